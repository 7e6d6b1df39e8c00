//! The client's address. Behind `n` trusted reverse proxies it is the `n`-th address from the
//! right of `X-Forwarded-For` (each proxy appends the address it received from); everything
//! left of that was written by the client and is not believed.

use std::net::IpAddr;

use poem::{Addr, http::HeaderMap};

pub(crate) fn client_ip(
    remote: &Addr,
    headers: &HeaderMap,
    trusted_proxy_hops: usize,
) -> Option<IpAddr> {
    let socket = remote.as_socket_addr().map(|a| a.ip());
    if trusted_proxy_hops == 0 {
        return socket;
    }
    let forwarded: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    match forwarded.len().checked_sub(trusted_proxy_hops) {
        Some(index) => forwarded[index].parse().ok().or(socket),
        // Fewer entries than proxies: the request did not come through them all.
        None => socket,
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use poem::http::HeaderValue;

    use super::*;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for value in values {
            map.append("x-forwarded-for", HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn forwarded_addresses_are_believed_only_as_far_as_trusted_proxies() {
        let proxy = Addr::SocketAddr(SocketAddr::from(([10, 0, 0, 1], 4000)));
        let spoofed = headers(&["6.6.6.6, 203.0.113.9"]);
        assert_eq!(
            client_ip(&proxy, &spoofed, 0),
            Some("10.0.0.1".parse().unwrap())
        );
        assert_eq!(
            client_ip(&proxy, &spoofed, 1),
            Some("203.0.113.9".parse().unwrap())
        );
        assert_eq!(
            client_ip(&proxy, &headers(&["6.6.6.6", "203.0.113.9"]), 2),
            Some("6.6.6.6".parse().unwrap())
        );
        assert_eq!(
            client_ip(&proxy, &headers(&[]), 1),
            Some("10.0.0.1".parse().unwrap())
        );
        assert_eq!(
            client_ip(&proxy, &headers(&["not-an-ip"]), 1),
            Some("10.0.0.1".parse().unwrap())
        );
    }
}
