//! The destination guard against server-side request forgery: deliveries must not reach
//! the service's own network unless that is allowed. Checked on every resolved address
//! (by the HTTP client's resolver) and on IP-literal hosts before sending and after
//! every redirect.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

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
pub fn refusal(ip: IpAddr, allow_private: bool) -> Option<(&'static str, &'static str)> {
    const PRIVATE_HINT: &str =
        "; --allow-private-destinations allows loopback and private networks";
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 @ IpAddr::V4(_) => v4,
    };
    let always = match ip {
        IpAddr::V4(v4) => always_refused_v4(v4),
        IpAddr::V6(v6) => always_refused_v6(v6),
    };
    if let Some(kind) = always {
        return Some((kind, ""));
    }
    if allow_private {
        return None;
    }
    let private = match ip {
        IpAddr::V4(v4) => private_v4(v4),
        IpAddr::V6(v6) => private_v6(v6),
    };
    private.map(|kind| (kind, PRIVATE_HINT))
}

fn always_refused_v4(ip: Ipv4Addr) -> Option<&'static str> {
    if ip.is_unspecified() {
        Some("an unspecified")
    } else if ip.is_link_local() {
        Some("a link-local")
    } else if ip.is_multicast() {
        Some("a multicast")
    } else if ip.is_broadcast() {
        Some("a broadcast")
    } else {
        None
    }
}

fn always_refused_v6(ip: Ipv6Addr) -> Option<&'static str> {
    if ip.is_unspecified() {
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

/// The HTTP client's resolver: drops refused addresses, and fails when none is left.
#[derive(Debug, Clone, Copy)]
pub struct GuardedResolver {
    pub allow_private: bool,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow_private = self.allow_private;
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let resolved: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let mut first_refusal = None;
            let allowed: Vec<SocketAddr> = resolved
                .into_iter()
                .filter(|addr| match refusal(addr.ip(), allow_private) {
                    None => true,
                    Some((kind, hint)) => {
                        first_refusal.get_or_insert(Refused {
                            host: host.clone(),
                            ip: addr.ip(),
                            kind,
                            hint,
                        });
                        false
                    }
                })
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
        ] {
            assert!(refused(ip, false), "{ip}");
            assert!(!refused(ip, true), "{ip} with private allowed");
        }
    }

    #[test]
    fn link_local_multicast_and_unspecified_are_always_refused() {
        for ip in [
            "169.254.169.254",
            "224.0.0.1",
            "0.0.0.0",
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
        for ip in ["93.184.216.34", "2606:2800:220:1::1", "172.32.0.1"] {
            assert!(!refused(ip, false), "{ip}");
        }
    }

    #[test]
    fn ip_literal_urls_are_checked() {
        let url = Url::parse("http://169.254.169.254/latest/meta-data").expect("url");
        let err = check_url(&url, true).expect_err("metadata address");
        assert!(err.to_string().contains("link-local"), "{err}");
        assert!(check_url(&Url::parse("https://example.com/").expect("url"), false).is_ok());
    }
}
