//! `rkube-images`: writes the offline test images (busybox and pause) as OCI image-layout
//! tarballs into a directory — e.g. a kubelet's `--images-dir`.
//!
//! Usage: `rkube-images DIR`

fn main() -> anyhow::Result<()> {
    let dir = std::env::args_os()
        .nth(1)
        .ok_or_else(|| anyhow::anyhow!("usage: rkube-images DIR"))?;
    for path in rkube_images::write_default_images(std::path::Path::new(&dir))? {
        println!("{}", path.display());
    }
    Ok(())
}
