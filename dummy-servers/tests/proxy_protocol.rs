//! A backend that expects a PROXY header, as a client sees it: the
//! header first (v1 or v2, before TLS on a TLS port), then HTTP; its
//! answer names the client the header gave. Real sockets, raw bytes.

use std::net::SocketAddr;

use dummy_servers::testing::{Opening, RunningBackend, get_after};
use lab_common::proxy_protocol::{Version, local_header, proxy_header};
use lab_common::testing::TestCerts;

fn addr(text: &str) -> SocketAddr {
    text.parse().expect("a valid test address")
}

#[tokio::test]
async fn a_plain_port_shows_the_client_of_a_v1_or_v2_header() {
    let backend = RunningBackend::start_proxied(None).await;
    for version in [Version::V1, Version::V2] {
        let opening = Opening {
            first: proxy_header(
                version,
                addr("192.0.2.1:56324"),
                addr("198.51.100.7:443"),
            ),
            ..Opening::default()
        };
        let answer = get_after(backend.addr, &opening, "/").await.unwrap();
        let line = format!(
            "PROXY {version}: client 192.0.2.1:56324, to 198.51.100.7:443\n"
        );
        assert!(answer.contains(&line), "{answer}");

        let json = get_after(backend.addr, &opening, "/?format=json")
            .await
            .unwrap();
        assert!(
            json.contains(r#""proxy_client":"192.0.2.1:56324""#),
            "{json}"
        );
    }
}

#[tokio::test]
async fn a_tls_port_reads_the_header_before_the_handshake() {
    let certs = TestCerts::new();
    let backend =
        RunningBackend::start_proxied(Some(certs.server_config())).await;
    let opening = Opening {
        first: proxy_header(
            Version::V2,
            addr("[2001:db8::1]:1234"),
            addr("[2001:db8::2]:443"),
        ),
        tls: Some(certs.client_config()),
        ..Opening::default()
    };
    let answer = get_after(backend.addr, &opening, "/").await.unwrap();
    assert!(answer.contains(" over TLS, call #1\n"), "{answer}");
    assert!(
        answer.contains("PROXY v2: client [2001:db8::1]:1234, to"),
        "{answer}"
    );
}

#[tokio::test]
async fn a_header_without_addresses_is_shown_as_such() {
    let backend = RunningBackend::start_proxied(None).await;
    for (version, said) in
        [(Version::V1, "v1 UNKNOWN"), (Version::V2, "v2 LOCAL")]
    {
        let opening = Opening {
            first: local_header(version),
            ..Opening::default()
        };
        let answer = get_after(backend.addr, &opening, "/").await.unwrap();
        assert!(answer.contains(&format!("PROXY {said}\n")), "{answer}");
        let health = get_after(backend.addr, &opening, "/health").await;
        assert!(health.unwrap().ends_with("\r\n\r\nok\n"));
    }
}

#[tokio::test]
async fn a_connection_without_a_header_is_closed_unanswered() {
    let backend = RunningBackend::start_proxied(None).await;
    let answer = get_after(backend.addr, &Opening::default(), "/").await;
    // Closed, or reset because the request was left unread.
    if let Ok(answer) = answer {
        assert_eq!(answer, "");
    }
    // The port still serves the next client that sends one.
    let opening = Opening {
        first: local_header(Version::V2),
        ..Opening::default()
    };
    assert!(get_after(backend.addr, &opening, "/").await.is_ok());
}
