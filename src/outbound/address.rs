//! Where an endpoint may point (SSRF safety): `https://` URLs whose addresses are public, unless the
//! service allows private networks (`ROLLCALL_OUTBOUND_ALLOW_PRIVATE`, for demos and tests). Names are
//! resolved by [`CheckedResolver`] when a delivery connects, so a name that later resolves to a private
//! address is refused then, not only when the endpoint is created.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use url::{Host, Url};

/// Which addresses deliveries may reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    /// Public addresses over `https://` only.
    Public,
    /// Also `http://`, loopback and private networks.
    Private,
}

impl Reach {
    /// The reach the settings give (`ROLLCALL_OUTBOUND_ALLOW_PRIVATE`).
    pub fn of(settings: &crate::config::Settings) -> Reach {
        if settings.outbound_allow_private {
            Reach::Private
        } else {
            Reach::Public
        }
    }
}

/// The longest URL an endpoint may have.
const LONGEST_URL: usize = 2000;

/// Checks an endpoint URL; the text says what is wrong.
pub fn check_url(text: &str, reach: Reach) -> Result<Url, String> {
    if text.len() > LONGEST_URL {
        return Err(format!("at most {LONGEST_URL} characters"));
    }
    let url = Url::parse(text).map_err(|why| format!("not a URL ({why})"))?;
    match (url.scheme(), reach) {
        ("https", _) | ("http", Reach::Private) => {}
        ("http", Reach::Public) => return Err(
            "must be https:// (plain http:// is allowed only with ROLLCALL_OUTBOUND_ALLOW_PRIVATE)"
                .into(),
        ),
        (scheme, _) => return Err(format!("must be https://, not {scheme}://")),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not carry a user name or password".into());
    }
    let ip = match url.host() {
        None => return Err("has no host".into()),
        Some(Host::Domain(name)) if reach == Reach::Public && is_local_name(name) => {
            return Err(format!("{name} is a local name"))
        }
        Some(Host::Domain(_)) => None,
        Some(Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
        Some(Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
    };
    if let Some(ip) = ip {
        if !reachable(ip, reach) {
            return Err(format!("{ip} is a private address"));
        }
    }
    Ok(url)
}

fn is_local_name(name: &str) -> bool {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    name == "localhost" || name.ends_with(".localhost") || name.ends_with(".local")
}

/// Whether a delivery may connect to `ip`.
pub fn reachable(ip: IpAddr, reach: Reach) -> bool {
    reach == Reach::Private || is_public(ip)
}

fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(ip) => is_public_v4(ip),
        IpAddr::V6(ip) => match ip.to_ipv4_mapped() {
            Some(v4) => is_public_v4(v4),
            None => is_public_v6(ip),
        },
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    !(ip.is_private()
        || ip.is_loopback()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        // Shared address space (carrier-grade NAT), 100.64.0.0/10.
        || (a == 100 && (64..128).contains(&b))
        // Benchmarking, 198.18.0.0/15; reserved, 240.0.0.0/4.
        || (a == 198 && (b == 18 || b == 19))
        || a >= 240)
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    !(ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        // Unique local fc00::/7, link-local fe80::/10, documentation 2001:db8::/32.
        || (first & 0xfe00) == 0xfc00
        || (first & 0xffc0) == 0xfe80
        || (first == 0x2001 && ip.segments()[1] == 0x0db8))
}

/// Resolves endpoint host names for deliveries, keeping only the addresses they may reach.
#[derive(Debug, Clone, Copy)]
pub struct CheckedResolver(pub Reach);

impl reqwest::dns::Resolve for CheckedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let reach = self.0;
        Box::pin(async move {
            let host = name.as_str().to_string();
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed: Vec<SocketAddr> = found
                .iter()
                .copied()
                .filter(|a| reachable(a.ip(), reach))
                .collect();
            if allowed.is_empty() {
                let why = if found.is_empty() {
                    format!("{host} has no address")
                } else {
                    format!("{host} resolves only to private addresses")
                };
                return Err(why.into());
            }
            let addrs: reqwest::dns::Addrs = Box::new(allowed.into_iter());
            Ok(addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_public_https_urls_unless_private_networks_are_allowed() {
        for ok in [
            "https://hooks.example.com/rollcall",
            "https://93.184.215.14:8443/x",
        ] {
            assert!(check_url(ok, Reach::Public).is_ok(), "{ok}");
        }
        for refused in [
            "http://hooks.example.com/",
            "ftp://hooks.example.com/",
            "https://127.0.0.1/",
            "https://10.1.2.3/",
            "https://169.254.169.254/latest/meta-data",
            "https://[::1]/",
            "https://[fd00::1]/",
            "https://[::ffff:192.168.1.1]/",
            "https://100.64.0.1/",
            "https://localhost/",
            "https://printer.local/",
            "https://user:pass@hooks.example.com/",
            "not a url",
        ] {
            assert!(check_url(refused, Reach::Public).is_err(), "{refused}");
        }
        assert!(check_url("http://127.0.0.1:9000/hook", Reach::Private).is_ok());
        assert!(check_url("ftp://127.0.0.1/", Reach::Private).is_err());
    }
}
