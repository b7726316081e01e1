//! The HTTP SMS gateway against a scripted gateway on a loopback port: what it posts, and how
//! its answers read (2xx sent, 4xx refused, 5xx and silence worth another try).

use serde_json::{Value, json};
use uuid::Uuid;
use videoamt_adapters::sms::HttpSms;
use videoamt_core::domain::SubjectId;
use videoamt_core::sms::{OutgoingSms, SmsError, SmsGateway as _};

use crate::scripted::server;

fn sms() -> OutgoingSms {
    OutgoingSms {
        to: "+49 721 1234567".into(),
        text: "Ihre TAN: 123456".into(),
        owner: SubjectId(Uuid::from_u128(1)),
        key: Uuid::from_u128(7),
    }
}

#[tokio::test]
async fn an_sms_is_posted_as_json_with_the_token_and_refusals_read_as_such() {
    let (addr, mut seen) = server(vec![
        (202, json!({})),
        (400, json!({"error": "bad number"})),
        (503, json!({})),
    ])
    .await;
    let gateway =
        HttpSms::new(&format!("http://{addr}/v1/sms?konto=amt"), "sms-token").expect("valid");
    assert_eq!(gateway.send(&sms()).await, Ok(()));
    let sent = seen.recv().await.expect("a request");
    assert!(
        sent.head.starts_with("POST /v1/sms?konto=amt HTTP/1.1"),
        "{}",
        sent.head
    );
    assert_eq!(
        sent.header("authorization").as_deref(),
        Some("Bearer sms-token")
    );
    let body: Value = serde_json::from_slice(&sent.body).expect("JSON");
    assert_eq!(
        body,
        json!({"to": "+49 721 1234567", "text": "Ihre TAN: 123456", "reference": Uuid::from_u128(7)})
    );
    assert!(matches!(
        gateway.send(&sms()).await,
        Err(SmsError::Refused(_))
    ));
    assert!(matches!(
        gateway.send(&sms()).await,
        Err(SmsError::Unavailable(_))
    ));
    assert!(HttpSms::new("https://sms.example/v1", "t").is_err());
}
