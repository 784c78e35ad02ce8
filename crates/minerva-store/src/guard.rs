//! Which URLs a pull may reach when the request comes from someone else (the HTTP API): a
//! guard against server-side request forgery, where a client makes the server fetch from an
//! address only the server can reach (its own loopback services, the LAN, a cloud's metadata
//! endpoint at 169.254.169.254).
//!
//! The address check runs where the connection is made (the HTTP client's resolver), for the
//! first request and for every redirect, so a name that resolves to a public address when
//! checked and to a private one a moment later (DNS rebinding) is still refused.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};

/// What a pull of a plain URL may reach. Hub sources (`hf.co/…`) go to the hub endpoint the
/// operator configured (`$HF_ENDPOINT`) and are not restricted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum UrlPolicy {
    /// Any URL (`minerva pull` on the user's own command line).
    #[default]
    Any,
    /// `https://` URLs whose host resolves only to public addresses: not loopback, private
    /// (RFC 1918, RFC 4193), link-local, shared (RFC 6598), unspecified, multicast or reserved.
    /// The default of `minerva serve` for `/api/pull` (`--pull-private-urls` lifts it).
    PublicHttps,
}

/// The message of a refused address; [`crate::http`] turns a resolver error carrying it into
/// a refusal (not a network failure worth retrying).
pub(crate) const REFUSED: &str = "is not a public address";

/// How the refusal ends: what the operator can do.
pub(crate) const HINT: &str =
    "pulls over the API reach only public https:// addresses (start the server with --pull-private-urls to allow others, or run `minerva pull` on the server's machine)";

/// Whether `ip` is an address on the public internet.
pub(crate) fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public_v4(v4);
            }
            let s = v6.segments();
            // NAT64 (64:ff9b::/96) carries an IPv4 address in its last 32 bits.
            if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
                let [a, b] = s[6].to_be_bytes();
                let [c, d] = s[7].to_be_bytes();
                return is_public_v4(Ipv4Addr::new(a, b, c, d));
            }
            // 6to4 (2002::/16) carries one in bits 16 to 48.
            if s[0] == 0x2002 {
                let [a, b] = s[1].to_be_bytes();
                let [c, d] = s[2].to_be_bytes();
                return is_public_v4(Ipv4Addr::new(a, b, c, d));
            }
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00 // unique local, fc00::/7
                || (s[0] & 0xffc0) == 0xfe80 // link-local, fe80::/10
                || (s[0] & 0xffc0) == 0xfec0 // site-local (deprecated), fec0::/10
                || s[0] == 0x2001 && s[1] == 0x0db8 // documentation
                || s[0] == 0x2001 && s[1] == 0 // Teredo, 2001::/32: a tunnel to any IPv4 address
                || s[..6] == [0; 6]) // IPv4-compatible (deprecated), ::/96
        }
    }
}

fn is_public_v4(v4: Ipv4Addr) -> bool {
    let [a, b, ..] = v4.octets();
    !(v4.is_loopback()
        || v4.is_private()
        || v4.is_link_local()
        || v4.is_unspecified()
        || v4.is_broadcast()
        || v4.is_multicast()
        || v4.is_documentation()
        || a == 0 // "this network", 0.0.0.0/8
        || (a == 100 && (64..128).contains(&b)) // shared address space, 100.64.0.0/10
        || (a == 192 && b == 0 && v4.octets()[2] == 0) // IETF protocol assignments
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || a >= 240) // reserved
}

/// Checks that `url` is `https://` and its host public before anything is sent (with
/// [`resolve_public`]), so that a refusal is
/// the pull's first answer (the check at connection time stays: it covers redirects and a name
/// that resolves elsewhere by then). Hosts are read as the HTTP client reads them (the WHATWG
/// URL rules: `https://2130706433/` is 127.0.0.1).
pub(crate) fn check_url(url: &str) -> crate::Result<()> {
    use crate::StoreError;
    let parsed = url::Url::parse(url)
        .map_err(|e| StoreError::Invalid(format!("invalid URL '{url}': {e}")))?;
    if parsed.scheme() != "https" {
        return Err(StoreError::Invalid(format!(
            "cannot pull {url}: not an https:// URL; {HINT}"
        )));
    }
    let port = parsed.port_or_known_default().unwrap_or(443);
    let netloc = match parsed.host() {
        Some(url::Host::Ipv6(ip)) => format!("[{ip}]:{port}"),
        Some(host) => format!("{host}:{port}"),
        None => return Err(StoreError::Invalid(format!("invalid URL '{url}': no host"))),
    };
    match resolve_public(&netloc) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => Err(StoreError::Invalid(format!(
            "cannot pull {url}: {e}; {HINT}"
        ))),
        Err(e) => Err(StoreError::Http(format!(
            "{url}: cannot resolve its host: {e}"
        ))),
    }
}

/// The resolver of a guarded client: the system's, keeping only public addresses; a name with
/// none is an error whose message holds [`REFUSED`].
pub(crate) fn resolve_public(netloc: &str) -> io::Result<Vec<SocketAddr>> {
    let all: Vec<SocketAddr> = netloc.to_socket_addrs()?.collect();
    let public: Vec<SocketAddr> = all.iter().copied().filter(|a| is_public(a.ip())).collect();
    if public.is_empty() && !all.is_empty() {
        let host = netloc.rsplit_once(':').map_or(netloc, |(h, _)| h);
        tracing::warn!(%netloc, addresses = ?all, "pull refused: not a public address");
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!("{host} {REFUSED}"),
        ));
    }
    Ok(public)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_and_special_addresses_are_not_public() {
        for ip in [
            "127.0.0.1",
            "127.8.9.10",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "0.1.2.3",
            "255.255.255.255",
            "224.0.0.1",
            "240.0.0.1",
            "192.0.0.8",
            "198.18.0.1",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "::7f00:1",
            "2002:7f00:1::",
            "2002:a00:1::1",
            "2001:0:4136:e378:8000:63bf:3fff:fdd2",
            "2001:db8::1",
        ] {
            let parsed: IpAddr = ip.parse().map_err(|e| format!("{ip}: {e}")).unwrap();
            assert!(!is_public(parsed), "{ip} taken as public");
        }
    }

    #[test]
    fn public_addresses_are_public() {
        for ip in [
            "8.8.8.8",
            "1.1.1.1",
            "172.32.0.1",
            "100.128.0.1",
            "18.164.0.1",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:808:808::1",
        ] {
            let parsed: IpAddr = ip.parse().map_err(|e| format!("{ip}: {e}")).unwrap();
            assert!(is_public(parsed), "{ip} taken as private");
        }
    }

    #[test]
    fn urls_are_checked_as_the_client_reads_them() {
        for url in [
            "https://2130706433/x.gguf",
            "https://0x7f000001/x.gguf",
            "https://127.1/x.gguf",
            "https://evil@127.0.0.1/x.gguf",
            "HTTPS://LOCALHOST/x.gguf",
            "https://[::ffff:127.0.0.1]/x.gguf",
            "https://169.254.169.254/latest/meta-data/",
        ] {
            match check_url(url) {
                Err(crate::StoreError::Invalid(said)) => {
                    assert!(said.contains("not a public address"), "{url}: {said}")
                }
                other => panic!("{url}: {other:?}"),
            }
        }
        assert!(matches!(
            check_url("https://"),
            Err(crate::StoreError::Invalid(_))
        ));
    }

    #[test]
    fn the_resolver_refuses_loopback_names() {
        let err = resolve_public("127.0.0.1:80").err().map(|e| e.to_string());
        assert_eq!(err.as_deref(), Some("127.0.0.1 is not a public address"));
        let err = resolve_public("[::1]:80").err().map(|e| e.to_string());
        assert_eq!(err.as_deref(), Some("[::1] is not a public address"));
    }
}
