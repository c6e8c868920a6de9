//! The destination guard against server-side request forgery: deliveries must not reach
//! the service's own network unless that is allowed. Checked on every resolved address
//! (by the HTTP client's resolver) and on IP-literal hosts before sending and after
//! every redirect.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use url::{Host, Url};

#[derive(Debug, Clone, thiserror::Error)]
#[error("refused: {host} is {ip}, {kind} address (deliveries to it are blocked{hint})")]
pub struct Refused {
    pub host: String,
    pub ip: IpAddr,
    pub kind: &'static str,
    pub hint: &'static str,
}

/// Why `ip` may not be a destination, or `None` when it may.
///
/// An IPv6 address that carries an IPv4 one (IPv4-mapped and -compatible, NAT64, 6to4,
/// Teredo) is judged by the IPv4 address it carries as well: `64:ff9b::a9fe:a9fe` is the
/// metadata service, whatever its spelling.
pub fn refusal(ip: IpAddr, allow_private: bool) -> Option<(&'static str, &'static str)> {
    const PRIVATE_HINT: &str =
        "; --allow-private-destinations allows loopback and private networks";
    let mut judged: Vec<IpAddr> = vec![ip];
    if let IpAddr::V6(v6) = ip {
        judged.extend(embedded_v4(v6).into_iter().map(IpAddr::V4));
    }
    let always = judged.iter().find_map(|&ip| match ip {
        IpAddr::V4(v4) => always_refused_v4(v4),
        IpAddr::V6(v6) => always_refused_v6(v6),
    });
    if let Some(kind) = always {
        return Some((kind, ""));
    }
    if allow_private {
        return None;
    }
    judged
        .iter()
        .find_map(|&ip| match ip {
            IpAddr::V4(v4) => private_v4(v4),
            IpAddr::V6(v6) => private_v6(v6),
        })
        .map(|kind| (kind, PRIVATE_HINT))
}

/// The IPv4 addresses an IPv6 address carries, by the transition scheme its prefix names.
fn embedded_v4(ip: Ipv6Addr) -> Vec<Ipv4Addr> {
    let s = ip.segments();
    let v4 = |high: u16, low: u16| Ipv4Addr::from((u32::from(high) << 16) | u32::from(low));
    if let Some(mapped) = ip.to_ipv4_mapped() {
        // ::ffff:a.b.c.d
        vec![mapped]
    } else if s[..6] == [0; 6] && !ip.is_loopback() && !ip.is_unspecified() {
        // IPv4-compatible ::a.b.c.d (deprecated, still routed by some stacks).
        vec![v4(s[6], s[7])]
    } else if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        // NAT64, the well-known prefix 64:ff9b::/96 (RFC 6052).
        vec![v4(s[6], s[7])]
    } else if s[..3] == [0x64, 0xff9b, 1] {
        // NAT64, the local-use prefix 64:ff9b:1::/48: the address sits in bits 48..64 and
        // 72..88, around the reserved u octet (RFC 6052 section 2.2).
        vec![v4(s[3], (s[4] << 8) | (s[5] >> 8))]
    } else if s[0] == 0x2002 {
        // 6to4, 2002:a.b.c.d::/48.
        vec![v4(s[1], s[2])]
    } else if s[..2] == [0x2001, 0] {
        // Teredo: the server's address in bits 32..64, the client's inverted in the last 32.
        vec![v4(s[2], s[3]), v4(!s[6], !s[7])]
    } else {
        Vec::new()
    }
}

/// Cloud metadata services: their answers hold credentials, so no setting allows them.
const METADATA_V4: [Ipv4Addr; 4] = [
    Ipv4Addr::new(169, 254, 169, 254), // AWS, GCP, Azure, OCI, ...
    Ipv4Addr::new(169, 254, 170, 2),   // AWS ECS task metadata
    Ipv4Addr::new(100, 100, 100, 200), // Alibaba Cloud
    Ipv4Addr::new(192, 0, 0, 192),     // Oracle Cloud (classic)
];
const METADATA_V6: [Ipv6Addr; 1] = [
    Ipv6Addr::new(0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x0254), // AWS (IMDS over IPv6)
];

fn always_refused_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, ..] = ip.octets();
    if METADATA_V4.contains(&ip) {
        Some("a cloud metadata")
    } else if a == 0 {
        // 0.0.0.0/8, "this network": 0.0.0.0 reaches the host itself on Linux.
        Some("an unspecified (0.0.0.0/8)")
    } else if ip.is_link_local() {
        Some("a link-local")
    } else if ip.is_multicast() {
        Some("a multicast")
    } else if a >= 240 {
        // 240.0.0.0/4, reserved, and the broadcast address in it.
        Some("a reserved (240.0.0.0/4)")
    } else {
        None
    }
}

fn always_refused_v6(ip: Ipv6Addr) -> Option<&'static str> {
    if METADATA_V6.contains(&ip) {
        Some("a cloud metadata")
    } else if ip.is_unspecified() {
        Some("an unspecified")
    } else if ip.is_multicast() {
        Some("a multicast")
    } else if ip.is_unicast_link_local() {
        Some("a link-local")
    } else {
        None
    }
}

fn private_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, ..] = ip.octets();
    if ip.is_loopback() {
        Some("a loopback")
    } else if ip.is_private() {
        Some("a private")
    } else if a == 100 && (64..128).contains(&b) {
        Some("a shared (carrier-grade NAT)")
    } else if a == 198 && (b == 18 || b == 19) {
        Some("a benchmarking (198.18.0.0/15)")
    } else {
        None
    }
}

fn private_v6(ip: Ipv6Addr) -> Option<&'static str> {
    if ip.is_loopback() {
        Some("a loopback")
    } else if ip.is_unique_local() {
        Some("a private (unique local)")
    } else {
        None
    }
}

/// Checks a URL whose host is an IP literal; domain names are checked when resolved.
pub fn check_url(url: &Url, allow_private: bool) -> Result<(), Refused> {
    let ip = match url.host() {
        Some(Host::Ipv4(v4)) => IpAddr::V4(v4),
        Some(Host::Ipv6(v6)) => IpAddr::V6(v6),
        Some(Host::Domain(_)) | None => return Ok(()),
    };
    match refusal(ip, allow_private) {
        Some((kind, hint)) => Err(Refused {
            host: url.host_str().unwrap_or_default().to_owned(),
            ip,
            kind,
            hint,
        }),
        None => Ok(()),
    }
}

/// Where names are resolved: the system's resolver, or, in tests, a fixed table, so that
/// a test can point a name at any address without a packet leaving the machine.
#[derive(Debug, Clone, Default)]
pub enum Lookup {
    #[default]
    System,
    Table(Arc<HashMap<String, Vec<IpAddr>>>),
}

impl Lookup {
    async fn resolve(&self, host: &str) -> std::io::Result<Vec<IpAddr>> {
        match self {
            Self::System => Ok(tokio::net::lookup_host((host, 0))
                .await?
                .map(|addr| addr.ip())
                .collect()),
            Self::Table(table) => table.get(host).cloned().ok_or_else(|| {
                std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    format!("no address for {host}"),
                )
            }),
        }
    }
}

/// The HTTP client's resolver: drops refused addresses, and fails when none is left, so
/// that no connection to one is ever attempted.
#[derive(Debug, Clone)]
pub struct GuardedResolver {
    pub allow_private: bool,
    pub lookup: Lookup,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow_private = self.allow_private;
        let lookup = self.lookup.clone();
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let resolved = lookup.resolve(&host).await?;
            let mut first_refusal = None;
            let allowed: Vec<SocketAddr> = resolved
                .into_iter()
                .filter(|&ip| match refusal(ip, allow_private) {
                    None => true,
                    Some((kind, hint)) => {
                        first_refusal.get_or_insert(Refused {
                            host: host.clone(),
                            ip,
                            kind,
                            hint,
                        });
                        false
                    }
                })
                .map(|ip| SocketAddr::new(ip, 0))
                .collect();
            match (allowed.is_empty(), first_refusal) {
                (true, Some(refused)) => {
                    Err(Box::new(refused) as Box<dyn std::error::Error + Send + Sync>)
                }
                _ => Ok(Box::new(allowed.into_iter()) as Addrs),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(ip: &str, allow_private: bool) -> bool {
        refusal(ip.parse().expect("ip"), allow_private).is_some()
    }

    #[test]
    fn private_networks_are_refused_unless_allowed() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "100.64.0.1",
            "::1",
            "fd00::1",
            "::ffff:10.0.0.1",
            "198.18.0.1",
            "198.19.255.254",
        ] {
            assert!(refused(ip, false), "{ip}");
            assert!(!refused(ip, true), "{ip} with private allowed");
        }
    }

    #[test]
    fn link_local_multicast_reserved_unspecified_and_metadata_are_always_refused() {
        for ip in [
            "169.254.169.254",
            "169.254.170.2",
            "100.100.100.200",
            "fd00:ec2::254",
            "192.0.0.192",
            "224.0.0.1",
            "0.0.0.0",
            "0.1.2.3",
            "240.0.0.1",
            "255.255.255.255",
            "fe80::1",
            "ff02::1",
            "::",
        ] {
            assert!(refused(ip, false), "{ip}");
            assert!(refused(ip, true), "{ip} with private allowed");
        }
    }

    #[test]
    fn public_addresses_pass() {
        for ip in [
            "93.184.216.34",
            "2606:2800:220:1::1",
            "172.32.0.1",
            "198.20.0.1",
            "64:ff9b::5db8:d822",
            "2002:5db8:d822::1",
            "::5db8:d822",
        ] {
            assert!(!refused(ip, false), "{ip}");
        }
    }

    /// IPv6 spellings of refused IPv4 addresses are judged by the address they carry.
    #[test]
    fn transition_addresses_are_judged_by_the_ipv4_they_carry() {
        let always = [
            // NAT64, well-known prefix: 169.254.169.254, 0.0.0.0
            "64:ff9b::a9fe:a9fe",
            "64:ff9b::",
            // NAT64, local-use /48: 169.254.169.254 in bits 48..64 and 72..88
            "64:ff9b:1:a9fe:a9:fe00::",
            // 6to4 of 169.254.169.254 and of 240.0.0.1
            "2002:a9fe:a9fe::1",
            "2002:f000:1::",
            // Teredo: client 169.254.169.254 (inverted), and a server in 0.0.0.0/8
            "2001:0:5db8:d822:0:0:5601:5601",
            "2001:0:0:1::1",
            // IPv4-compatible
            "::a9fe:a9fe",
            "::ffff:169.254.169.254",
        ];
        for ip in always {
            assert!(refused(ip, false), "{ip}");
            assert!(refused(ip, true), "{ip} with private allowed");
        }
        let private = [
            "64:ff9b::7f00:1",
            "64:ff9b:1:a00:1:100::",
            "2002:c0a8:101::1",
            "2001:0:5db8:d822::f5ff:fffe",
            "::7f00:1",
            "::a00:1",
        ];
        for ip in private {
            assert!(refused(ip, false), "{ip}");
            assert!(!refused(ip, true), "{ip} with private allowed");
        }
        assert_eq!(
            embedded_v4("64:ff9b:1:a9fe:a9:fe00::".parse().expect("ip")),
            [Ipv4Addr::new(169, 254, 169, 254)]
        );
    }

    #[test]
    fn ip_literal_urls_are_checked() {
        let url = Url::parse("http://169.254.169.254/latest/meta-data").expect("url");
        let err = check_url(&url, true).expect_err("metadata address");
        assert!(err.to_string().contains("cloud metadata"), "{err}");
        assert!(check_url(&Url::parse("https://example.com/").expect("url"), false).is_ok());
    }
}
