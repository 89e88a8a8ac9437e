//! ClusterIP and NodePort allocation. Each allocated value is one storage key
//! (`/registry/ranges/serviceips/<ip>`, `/registry/ranges/servicenodeports/<port>`) created
//! with the store's create-if-absent, so two concurrent creates can never get the same value,
//! without a global lock; deleting the key releases the value. The key names its owner, so a
//! release never frees a value someone else holds now.

use std::net::Ipv4Addr;
use std::ops::RangeInclusive;
use std::sync::Arc;

use bytes::Bytes;
use ipnet::Ipv4Net;
use rand::Rng;

use crate::storage::{Storage, StorageError};

const IP_PREFIX: &str = "/registry/ranges/serviceips/";
const PORT_PREFIX: &str = "/registry/ranges/servicenodeports/";

/// Why an allocation failed.
#[derive(Debug, thiserror::Error)]
pub enum AllocError {
    /// The requested value is outside the configured range.
    #[error("provided {what} is not in the valid range. The range of valid {what}s is {range}")]
    OutOfRange {
        /// `IP` or `port`.
        what: &'static str,
        /// The range, as configured.
        range: String,
    },
    /// The requested value is taken.
    #[error("provided {what} is already allocated")]
    Taken {
        /// `IP` or `port`.
        what: &'static str,
    },
    /// Every value is taken.
    #[error("range is full: no {what}s left in {range}")]
    Full {
        /// `IP` or `port`.
        what: &'static str,
        /// The range.
        range: String,
    },
    /// Storage failed.
    #[error("allocation failed: {0}")]
    Storage(#[from] StorageError),
}

/// The service IP and node port allocators.
#[derive(Clone)]
pub struct Allocators {
    store: Arc<dyn Storage>,
    cidr: Ipv4Net,
    ports: RangeInclusive<u16>,
}

impl Allocators {
    /// Allocators over `store` for the given ranges.
    pub fn new(store: Arc<dyn Storage>, cidr: Ipv4Net, ports: RangeInclusive<u16>) -> Self {
        Self { store, cidr, ports }
    }

    /// The number of usable service IPs (network and broadcast addresses excluded).
    fn ip_count(&self) -> u32 {
        let size = 1u64 << (32 - u32::from(self.cidr.prefix_len()));
        u32::try_from(size.saturating_sub(2)).unwrap_or(u32::MAX)
    }

    fn ip_at(&self, offset: u32) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.cidr.network()) + 1 + offset)
    }

    /// Whether `ip` may be handed out.
    pub fn ip_in_range(&self, ip: Ipv4Addr) -> bool {
        self.cidr.contains(&ip) && ip != self.cidr.network() && ip != self.cidr.broadcast()
    }

    async fn claim(&self, key: &str, owner: &str, dry_run: bool) -> Result<bool, StorageError> {
        if dry_run {
            return Ok(self.store.get(key).await?.is_none());
        }
        match self.store.create(key, Bytes::from(owner.to_string())).await {
            Ok(_) => Ok(true),
            Err(StorageError::AlreadyExists { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Allocates `requested`, or a free IP. Dynamic allocations avoid the lower band of the
    /// range (kept for static addresses such as the DNS service's), as Kubernetes does.
    pub async fn allocate_ip(
        &self,
        owner: &str,
        requested: Option<Ipv4Addr>,
        dry_run: bool,
    ) -> Result<Ipv4Addr, AllocError> {
        if let Some(ip) = requested {
            if !self.ip_in_range(ip) {
                return Err(AllocError::OutOfRange {
                    what: "IP",
                    range: self.cidr.to_string(),
                });
            }
            return if self
                .claim(&format!("{IP_PREFIX}{ip}"), owner, dry_run)
                .await?
            {
                Ok(ip)
            } else {
                Err(AllocError::Taken { what: "IP" })
            };
        }
        let count = self.ip_count();
        if count == 0 {
            return Err(AllocError::Full {
                what: "IP",
                range: self.cidr.to_string(),
            });
        }
        let static_band = (count / 16).clamp(16, 256).min(count / 2);
        let dynamic = count - static_band;
        let start = rand::rng().random_range(0..dynamic.max(1));
        // Walk the dynamic band from a random point, then the static band.
        let order = (0..dynamic)
            .map(|i| static_band + (start + i) % dynamic)
            .chain(0..static_band);
        for (tries, offset) in order.enumerate() {
            let ip = self.ip_at(offset);
            if self
                .claim(&format!("{IP_PREFIX}{ip}"), owner, dry_run)
                .await?
            {
                return Ok(ip);
            }
            if tries > 4096 {
                break;
            }
        }
        Err(AllocError::Full {
            what: "IP",
            range: self.cidr.to_string(),
        })
    }

    /// Allocates `requested`, or a free node port.
    pub async fn allocate_port(
        &self,
        owner: &str,
        requested: Option<u16>,
        dry_run: bool,
    ) -> Result<u16, AllocError> {
        let range = format!("{}-{}", self.ports.start(), self.ports.end());
        if let Some(port) = requested {
            if !self.ports.contains(&port) {
                return Err(AllocError::OutOfRange {
                    what: "port",
                    range,
                });
            }
            return if self
                .claim(&format!("{PORT_PREFIX}{port}"), owner, dry_run)
                .await?
            {
                Ok(port)
            } else {
                Err(AllocError::Taken { what: "port" })
            };
        }
        let size = u32::from(*self.ports.end()) - u32::from(*self.ports.start()) + 1;
        let start = rand::rng().random_range(0..size);
        for i in 0..size {
            let port = *self.ports.start() + u16::try_from((start + i) % size).unwrap_or(0);
            if self
                .claim(&format!("{PORT_PREFIX}{port}"), owner, dry_run)
                .await?
            {
                return Ok(port);
            }
        }
        Err(AllocError::Full {
            what: "port",
            range,
        })
    }

    async fn release(&self, key: &str, owner: &str) {
        match self.store.get(key).await {
            Ok(Some(kv)) if kv.value == owner.as_bytes() => {
                if let Err(e) = self.store.delete(key, Some(kv.mod_revision)).await {
                    tracing::warn!(key, error = %e, "could not release allocation");
                }
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(key, error = %e, "could not release allocation"),
        }
    }

    /// Releases `ip` if `owner` holds it.
    pub async fn release_ip(&self, ip: Ipv4Addr, owner: &str) {
        self.release(&format!("{IP_PREFIX}{ip}"), owner).await;
    }

    /// Releases `port` if `owner` holds it.
    pub async fn release_port(&self, port: u16, owner: &str) {
        self.release(&format!("{PORT_PREFIX}{port}"), owner).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::embedded::{EmbeddedConfig, EmbeddedStorage};

    fn allocators(cidr: &str, ports: RangeInclusive<u16>) -> (Allocators, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStorage::open(EmbeddedConfig::new(dir.path().join("db"))).unwrap();
        (
            Allocators::new(Arc::new(store), cidr.parse().unwrap(), ports),
            dir,
        )
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_allocations_never_repeat() {
        let (a, _dir) = allocators("10.0.0.0/26", 30000..=30099);
        let mut tasks = Vec::new();
        for i in 0..62 {
            let a = a.clone();
            tasks.push(tokio::spawn(async move {
                let owner = format!("ns/s{i}");
                (a.allocate_ip(&owner, None, false).await.unwrap(), owner)
            }));
        }
        let mut owners = std::collections::BTreeMap::new();
        for t in tasks {
            let (ip, owner) = t.await.unwrap();
            assert!(
                owners.insert(ip, owner).is_none(),
                "an IP was handed out twice"
            );
        }
        assert_eq!(owners.len(), 62);
        // The range (64 addresses minus network and broadcast) is now full.
        assert!(matches!(
            a.allocate_ip("ns/late", None, false).await,
            Err(AllocError::Full { .. })
        ));
        // Releasing frees exactly that address, and only for its owner.
        let (ip, owner) = owners.iter().next().unwrap();
        a.release_ip(*ip, "ns/not-the-owner").await;
        assert!(a.allocate_ip("ns/late", None, false).await.is_err());
        a.release_ip(*ip, owner).await;
        assert_eq!(a.allocate_ip("ns/late", None, false).await.unwrap(), *ip);
    }

    #[tokio::test]
    async fn requested_values_are_checked() {
        let (a, _dir) = allocators("10.96.0.0/12", 30000..=32767);
        let ip: Ipv4Addr = "10.96.0.10".parse().unwrap();
        assert_eq!(
            a.allocate_ip("kube-system/dns", Some(ip), false)
                .await
                .unwrap(),
            ip
        );
        assert!(matches!(
            a.allocate_ip("default/other", Some(ip), false).await,
            Err(AllocError::Taken { .. })
        ));
        assert!(matches!(
            a.allocate_ip("default/x", Some("192.168.0.1".parse().unwrap()), false)
                .await,
            Err(AllocError::OutOfRange { .. })
        ));
        a.release_ip(ip, "kube-system/dns").await;
        assert_eq!(
            a.allocate_ip("default/other", Some(ip), false)
                .await
                .unwrap(),
            ip
        );
        let p = a
            .allocate_port("default/np", Some(30080), false)
            .await
            .unwrap();
        assert_eq!(p, 30080);
        assert!(
            a.allocate_port("default/np2", Some(30080), false)
                .await
                .is_err()
        );
        assert!(
            a.allocate_port("default/np2", Some(80), false)
                .await
                .is_err()
        );
        // Dry runs reserve nothing.
        let q = a
            .allocate_port("default/dry", Some(30081), true)
            .await
            .unwrap();
        assert_eq!(q, 30081);
        assert_eq!(
            a.allocate_port("default/real", Some(30081), false)
                .await
                .unwrap(),
            30081
        );
    }
}
