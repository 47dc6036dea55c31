//! Service URLs (`pulsar://a:6650,b:6650`, `pulsar+ssl://host`) and broker addresses.

use std::fmt;

/// Default port of `pulsar://`.
pub const DEFAULT_PORT: u16 = 6650;
/// Default port of `pulsar+ssl://`.
pub const DEFAULT_TLS_PORT: u16 = 6651;

/// Why a service or broker URL was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UrlError {
    /// The URL was empty.
    #[error("empty service URL")]
    Empty,
    /// The scheme is not `pulsar` or `pulsar+ssl`.
    #[error("unsupported URL scheme in {0:?} (expected pulsar:// or pulsar+ssl://)")]
    UnsupportedScheme(String),
    /// A host is empty or malformed.
    #[error("invalid host in {0:?}")]
    InvalidHost(String),
    /// A port is not a number in 1..=65535.
    #[error("invalid port in {0:?}")]
    InvalidPort(String),
}

/// Where to open a TCP connection, and whether to wrap it in TLS.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BrokerAddress {
    /// Host name or IP address (IPv6 without brackets).
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// Whether the runtime must use TLS on this connection.
    pub tls: bool,
}

impl BrokerAddress {
    /// Parses one broker URL such as `pulsar://broker-1:6650` or `pulsar+ssl://broker-1:6651`.
    pub fn parse(url: &str) -> Result<BrokerAddress, UrlError> {
        let su = ServiceUrl::parse(url)?;
        match su.hosts.as_slice() {
            [one] => Ok(one.clone()),
            _ => Err(UrlError::InvalidHost(url.to_string())),
        }
    }

    /// `host:port`, the form used in `CONNECT.proxy_to_broker_url`.
    pub fn host_port(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

impl fmt::Display for BrokerAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.tls { "pulsar+ssl" } else { "pulsar" };
        write!(f, "{scheme}://{}", self.host_port())
    }
}

/// A parsed service URL: one scheme, one or more hosts tried in turn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceUrl {
    /// Whether the scheme is `pulsar+ssl`.
    pub tls: bool,
    /// The hosts, in the order given.
    pub hosts: Vec<BrokerAddress>,
}

impl ServiceUrl {
    /// Parses `pulsar://host[:port][,host[:port]...][/]` or the same with `pulsar+ssl://`.
    pub fn parse(url: &str) -> Result<ServiceUrl, UrlError> {
        let url = url.trim();
        if url.is_empty() {
            return Err(UrlError::Empty);
        }
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| UrlError::UnsupportedScheme(url.to_string()))?;
        let (tls, default_port) = match scheme.to_ascii_lowercase().as_str() {
            "pulsar" => (false, DEFAULT_PORT),
            "pulsar+ssl" => (true, DEFAULT_TLS_PORT),
            _ => return Err(UrlError::UnsupportedScheme(url.to_string())),
        };
        let rest = rest.trim_end_matches('/');
        if rest.contains('/') || rest.contains('?') || rest.contains('@') {
            return Err(UrlError::InvalidHost(url.to_string()));
        }
        let mut hosts = Vec::new();
        for part in rest.split(',') {
            hosts.push(parse_host(part.trim(), default_port, tls, url)?);
        }
        Ok(ServiceUrl { tls, hosts })
    }
}

fn parse_host(
    part: &str,
    default_port: u16,
    tls: bool,
    url: &str,
) -> Result<BrokerAddress, UrlError> {
    let (host, port) = if let Some(inner) = part.strip_prefix('[') {
        let (h, after) = inner
            .split_once(']')
            .ok_or_else(|| UrlError::InvalidHost(url.to_string()))?;
        let port = match after.strip_prefix(':') {
            Some(p) => Some(p),
            None if after.is_empty() => None,
            None => return Err(UrlError::InvalidHost(url.to_string())),
        };
        (h, port)
    } else {
        match part.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (part, None),
        }
    };
    if host.is_empty()
        || !host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | ':'))
    {
        return Err(UrlError::InvalidHost(url.to_string()));
    }
    let port = match port {
        None => default_port,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 => n,
            _ => return Err(UrlError::InvalidPort(url.to_string())),
        },
    };
    Ok(BrokerAddress {
        host: host.to_string(),
        port,
        tls,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(h: &str, p: u16, tls: bool) -> BrokerAddress {
        BrokerAddress {
            host: h.into(),
            port: p,
            tls,
        }
    }

    #[test]
    fn single_and_multi_host_with_default_ports() {
        let u = ServiceUrl::parse("pulsar://localhost:6650").unwrap();
        assert_eq!(u.hosts, vec![addr("localhost", 6650, false)]);
        let u = ServiceUrl::parse("pulsar://a:7000,b,c:7002/").unwrap();
        assert_eq!(
            u.hosts,
            vec![
                addr("a", 7000, false),
                addr("b", 6650, false),
                addr("c", 7002, false)
            ]
        );
        let u = ServiceUrl::parse("pulsar+ssl://a,b:7001").unwrap();
        assert!(u.tls);
        assert_eq!(u.hosts, vec![addr("a", 6651, true), addr("b", 7001, true)]);
        let u = ServiceUrl::parse("pulsar://[::1]:6650").unwrap();
        assert_eq!(u.hosts, vec![addr("::1", 6650, false)]);
        assert_eq!(u.hosts[0].to_string(), "pulsar://[::1]:6650");
    }

    #[test]
    fn errors() {
        assert_eq!(ServiceUrl::parse(""), Err(UrlError::Empty));
        assert!(matches!(
            ServiceUrl::parse("http://a:80"),
            Err(UrlError::UnsupportedScheme(_))
        ));
        assert!(matches!(
            ServiceUrl::parse("localhost:6650"),
            Err(UrlError::UnsupportedScheme(_))
        ));
        assert!(matches!(
            ServiceUrl::parse("pulsar://a:0"),
            Err(UrlError::InvalidPort(_))
        ));
        assert!(matches!(
            ServiceUrl::parse("pulsar://a:99999"),
            Err(UrlError::InvalidPort(_))
        ));
        assert!(matches!(
            ServiceUrl::parse("pulsar://a:x"),
            Err(UrlError::InvalidPort(_))
        ));
        assert!(matches!(
            ServiceUrl::parse("pulsar://a,,b"),
            Err(UrlError::InvalidHost(_))
        ));
        assert!(matches!(
            ServiceUrl::parse("pulsar://a/path"),
            Err(UrlError::InvalidHost(_))
        ));
    }

    #[test]
    fn broker_address() {
        let a = BrokerAddress::parse("pulsar://broker-1:6650").unwrap();
        assert_eq!(a, addr("broker-1", 6650, false));
        assert_eq!(a.host_port(), "broker-1:6650");
        assert_eq!(a.to_string(), "pulsar://broker-1:6650");
        assert!(BrokerAddress::parse("pulsar://a,b").is_err());
    }
}
