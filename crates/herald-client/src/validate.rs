//! Checks of what users pass in: server URLs, subjects, queue names.

use crate::{Error, Result};

/// Herald's default client port.
pub(crate) const DEFAULT_PORT: u16 = 4333;

/// Splits `nats://host:port` (or `host:port`, or `host`) into a URL for
/// messages and an address to dial. The default port is Herald's, 4333.
pub(crate) fn parse_url(url: &str) -> Result<(String, String)> {
    let invalid = || Error::InvalidUrl(url.to_string());
    let rest = url
        .trim()
        .strip_prefix("nats://")
        .or_else(|| url.trim().strip_prefix("tcp://"))
        .unwrap_or(url.trim())
        .trim_end_matches('/');
    if rest.is_empty() || rest.contains(['/', '@', ' ', '?', '#']) {
        return Err(invalid());
    }
    let addr = if let Some(v6) = rest.strip_prefix('[') {
        // [::1]:4333 or [::1]
        let (host, after) = v6.split_once(']').ok_or_else(invalid)?;
        match after {
            "" => format!("[{host}]:{DEFAULT_PORT}"),
            port => {
                let port = port.strip_prefix(':').ok_or_else(invalid)?;
                port.parse::<u16>().map_err(|_| invalid())?;
                rest.to_string()
            }
        }
    } else {
        match rest.rsplit_once(':') {
            Some((host, port)) if !host.is_empty() && !host.contains(':') => {
                port.parse::<u16>().map_err(|_| invalid())?;
                rest.to_string()
            }
            Some(_) => return Err(invalid()),
            None => format!("{rest}:{DEFAULT_PORT}"),
        }
    };
    Ok((format!("nats://{addr}"), addr))
}

/// A subject to publish or subscribe to: non-empty tokens separated by
/// dots, without whitespace.
pub(crate) fn check_subject(subject: &str) -> Result<()> {
    if subject.is_empty()
        || subject.split('.').any(str::is_empty)
        || subject.contains(|c: char| c.is_whitespace() || c == '\0')
    {
        return Err(Error::InvalidSubject(subject.to_string()));
    }
    Ok(())
}

/// A queue group name: non-empty, without whitespace.
pub(crate) fn check_queue(queue: &str) -> Result<()> {
    if queue.is_empty() || queue.contains(|c: char| c.is_whitespace() || c == '\0') {
        return Err(Error::InvalidSubject(queue.to_string()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let addr = |url| parse_url(url).map(|(_, addr)| addr);
        assert_eq!(addr("nats://127.0.0.1:4333").unwrap(), "127.0.0.1:4333");
        assert_eq!(addr("127.0.0.1:4222").unwrap(), "127.0.0.1:4222");
        assert_eq!(addr("localhost:5000").unwrap(), "localhost:5000");
        assert_eq!(addr("localhost").unwrap(), "localhost:4333");
        assert_eq!(addr("nats://[::1]:4222").unwrap(), "[::1]:4222");
        assert_eq!(addr("[::1]").unwrap(), "[::1]:4333");
        assert_eq!(parse_url("127.0.0.1:1").unwrap().0, "nats://127.0.0.1:1");
        for bad in [
            "",
            "nats://",
            "nats://host:notaport",
            "host:99999",
            "a/b:1",
            "u@h:1",
            "::1",
        ] {
            assert!(parse_url(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn subjects() {
        for good in ["a", "a.b", "a.*.c", "a.>", "_INBOX.x.1"] {
            assert!(check_subject(good).is_ok(), "{good}");
        }
        for bad in ["", ".a", "a.", "a..b", "a b", "a\tb", "a\0"] {
            assert!(
                matches!(check_subject(bad), Err(Error::InvalidSubject(_))),
                "{bad:?}"
            );
        }
        assert!(check_queue("workers").is_ok());
        assert!(check_queue("").is_err());
        assert!(check_queue("a b").is_err());
    }
}
