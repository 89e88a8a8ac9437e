//! A set of equal-sized subnets of the cluster CIDR (Kubernetes' `cidrset`): allocation goes
//! round-robin from the last allocated subnet, so a released subnet is not handed out again at
//! once.

use std::collections::BTreeSet;

use ipnet::Ipv4Net;

/// Why a subnet could not be taken.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CidrError {
    /// Every subnet is in use.
    #[error(
        "CIDR allocation failed; there are no remaining CIDRs left to allocate in the accepted range"
    )]
    Full,
    /// The subnet is not one of this set's.
    #[error("{0} is not a /{1} subnet of {2}")]
    Outside(Ipv4Net, u8, Ipv4Net),
}

/// The subnets of a cluster CIDR.
#[derive(Debug, Clone)]
pub struct CidrSet {
    cluster: Ipv4Net,
    mask: u8,
    used: BTreeSet<u32>,
    next: u32,
}

impl CidrSet {
    /// The /`mask` subnets of `cluster`.
    pub fn new(cluster: Ipv4Net, mask: u8) -> Self {
        Self {
            cluster: cluster.trunc(),
            mask,
            used: BTreeSet::new(),
            next: 0,
        }
    }

    /// How many subnets there are.
    pub fn size(&self) -> u32 {
        1u32 << (self.mask - self.cluster.prefix_len()).min(31)
    }

    fn subnet(&self, i: u32) -> Ipv4Net {
        let base = u32::from(self.cluster.network());
        let addr = base + (i << (32 - self.mask));
        Ipv4Net::new(addr.into(), self.mask).expect("valid prefix")
    }

    fn index(&self, net: &Ipv4Net) -> Result<u32, CidrError> {
        let outside = || CidrError::Outside(*net, self.mask, self.cluster);
        if net.prefix_len() != self.mask || !self.cluster.contains(net) {
            return Err(outside());
        }
        let off = u32::from(net.network()) - u32::from(self.cluster.network());
        Ok(off >> (32 - self.mask))
    }

    /// Takes the next free subnet.
    pub fn allocate(&mut self) -> Result<Ipv4Net, CidrError> {
        let n = self.size();
        for k in 0..n {
            let i = (self.next + k) % n;
            if self.used.insert(i) {
                self.next = (i + 1) % n;
                return Ok(self.subnet(i));
            }
        }
        Err(CidrError::Full)
    }

    /// Marks a subnet used (one a node already has).
    pub fn occupy(&mut self, net: &Ipv4Net) -> Result<(), CidrError> {
        let i = self.index(net)?;
        self.used.insert(i);
        Ok(())
    }

    /// Frees a subnet.
    pub fn release(&mut self, net: &Ipv4Net) -> Result<(), CidrError> {
        let i = self.index(net)?;
        self.used.remove(&i);
        Ok(())
    }

    /// Subnets in use.
    pub fn used(&self) -> usize {
        self.used.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hands_out_distinct_subnets_round_robin() {
        let mut s = CidrSet::new("10.244.0.0/16".parse().unwrap(), 24);
        assert_eq!(s.size(), 256);
        let a = s.allocate().unwrap();
        let b = s.allocate().unwrap();
        assert_eq!(a.to_string(), "10.244.0.0/24");
        assert_eq!(b.to_string(), "10.244.1.0/24");
        s.occupy(&"10.244.2.0/24".parse().unwrap()).unwrap();
        assert_eq!(
            s.allocate().unwrap().to_string(),
            "10.244.3.0/24",
            "occupied ones are skipped"
        );
        s.release(&a).unwrap();
        assert_eq!(
            s.allocate().unwrap().to_string(),
            "10.244.4.0/24",
            "round robin, not the freed one"
        );
        assert!(s.occupy(&"10.245.0.0/24".parse().unwrap()).is_err());
        assert!(s.occupy(&"10.244.0.0/25".parse().unwrap()).is_err());
        let mut tiny = CidrSet::new("10.0.0.0/30".parse().unwrap(), 31);
        tiny.allocate().unwrap();
        tiny.allocate().unwrap();
        assert_eq!(tiny.allocate(), Err(CidrError::Full));
    }
}
