//! The HTTP payment provider against a scripted provider on a loopback port: what it sends
//! (path, token, body, idempotency key) and how it reads each answer, refusals included.

use serde_json::{Value, json};
use uuid::Uuid;
use videoamt_adapters::payment::HttpPaymentProvider;
use videoamt_adapters::payment::signature::CallbackKey;
use videoamt_core::domain::PaymentId;
use videoamt_core::event::TenantId;
use videoamt_core::payment::{
    Callback, Captured, CreatePayment, PaymentError, PaymentItem, PaymentProvider as _,
    ProviderReference, ProviderStatus, Purpose,
};
use videoamt_core::tenant::{Cents, PaymentMethod};

use crate::scripted::server as provider;

fn request() -> CreatePayment {
    CreatePayment {
        tenant: TenantId::parse("ettlingen").expect("valid"),
        reference: PaymentId(Uuid::from_u128(3)),
        amount: Cents(4_700),
        purpose: Purpose::parse("Videotermin 00000001").expect("valid"),
        description: "Stadt Ettlingen: Personalausweis beantragen, Meldebescheinigung".into(),
        items: vec![
            PaymentItem {
                reference: "personalausweis".into(),
                description: "Personalausweis beantragen".into(),
                amount: Cents(3_700),
            },
            PaymentItem {
                reference: "meldebescheinigung".into(),
                description: "Meldebescheinigung".into(),
                amount: Cents(1_000),
            },
        ],
        return_url: "http://amt.test/termin/t/raum/zahlung/zurueck".into(),
        notify_url: "http://amt.test/zahlung/rueckmeldung".into(),
        methods: vec![
            PaymentMethod {
                id: "kreditkarte".into(),
                label: "Kreditkarte".into(),
            },
            PaymentMethod {
                id: "wero".into(),
                label: "Wero".into(),
            },
        ],
    }
}

fn transaction(status: &str, method: Option<&str>) -> Value {
    json!({"paymentInformation": {
        "transactionId": "sbx_1",
        "transactionUrl": "http://x/api/v1/paymenttransaction/sbx_1",
        "transactionRedirectUrl": "http://amt.test/sandbox/zahlung/bezahlen/sbx_1",
        "status": status,
        "paymentMethod": method,
    }})
}

#[tokio::test]
async fn create_status_and_capture_speak_the_protocol() {
    let mut captured = transaction("PAYED", Some("wero"));
    captured["capturedAmountCents"] = json!(4_700);
    let (addr, mut seen) = provider(vec![
        (201, transaction("INITIAL", None)),
        (200, transaction("AUTHORIZED", Some("wero"))),
        (200, captured),
    ])
    .await;
    let provider = HttpPaymentProvider::new(
        &format!("http://{addr}/sandbox/zahlung"),
        "das-token",
        "geheim",
    )
    .expect("valid settings");

    let created = provider.create(&request()).await.expect("created");
    assert_eq!(created.provider_reference.as_str(), "sbx_1");
    assert_eq!(
        created.redirect_url,
        "http://amt.test/sandbox/zahlung/bezahlen/sbx_1"
    );
    let sent = seen.recv().await.expect("a request");
    assert!(
        sent.head
            .starts_with("POST /sandbox/zahlung/api/v1/paymenttransaction HTTP/1.1"),
        "{}",
        sent.head
    );
    assert_eq!(
        sent.header("authorization").as_deref(),
        Some("Bearer das-token")
    );
    let body: Value = serde_json::from_slice(&sent.body).expect("JSON");
    assert_eq!(body["requestId"], "00000000-0000-0000-0000-000000000003");
    assert_eq!(body["grossAmountCents"], 4_700);
    assert_eq!(body["purpose"], "Videotermin 00000001");
    assert_eq!(body["currency"], "EUR");
    assert_eq!(body["paymentMethods"][1]["id"], "wero");
    assert_eq!(body["items"][0]["totalCents"], 3_700);
    assert_eq!(body["notifyUrl"], "http://amt.test/zahlung/rueckmeldung");

    let reference = ProviderReference::parse("sbx_1").expect("valid");
    assert_eq!(
        provider.status(&reference).await,
        Ok(ProviderStatus::Approved {
            method: "wero".into()
        })
    );
    let sent = seen.recv().await.expect("a request");
    assert!(
        sent.head
            .starts_with("GET /sandbox/zahlung/api/v1/paymenttransaction/sbx_1 HTTP/1.1")
    );

    assert_eq!(
        provider.capture(&reference, "payment-3").await,
        Ok(Captured {
            amount: Cents(4_700)
        })
    );
    let sent = seen.recv().await.expect("a request");
    assert!(
        sent.head
            .starts_with("POST /sandbox/zahlung/api/v1/paymenttransaction/sbx_1/capture")
    );
    assert_eq!(sent.header("idempotency-key").as_deref(), Some("payment-3"));
}

#[tokio::test]
async fn refusals_are_the_ports_errors_and_a_dead_provider_is_unavailable() {
    let problem = |kind: &str| json!({"type": kind, "title": "x", "status": 409});
    let (addr, _seen) = provider(vec![
        (401, problem("/problems/payment-unauthorized")),
        (404, problem("/problems/payment-unknown-transaction")),
        (409, problem("/problems/payment-not-approved")),
        (409, problem("/problems/payment-key-used")),
        (503, problem("/problems/store-unavailable")),
    ])
    .await;
    let provider = HttpPaymentProvider::new(&format!("http://{addr}"), "t", "s").expect("valid");
    let reference = ProviderReference::parse("sbx_1").expect("valid");
    assert_eq!(
        provider.status(&reference).await,
        Err(PaymentError::Unauthorized)
    );
    assert_eq!(
        provider.status(&reference).await,
        Err(PaymentError::UnknownTransaction)
    );
    assert_eq!(
        provider.capture(&reference, "k").await,
        Err(PaymentError::NotApproved)
    );
    assert_eq!(
        provider.capture(&reference, "k").await,
        Err(PaymentError::KeyUsed)
    );
    assert!(matches!(
        provider.status(&reference).await,
        Err(PaymentError::Unavailable(_))
    ));

    // Nobody listens there any more.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
        l.local_addr().expect("bound")
    };
    let gone = HttpPaymentProvider::new(&format!("http://{closed}"), "t", "s").expect("valid");
    assert!(matches!(
        gone.status(&reference).await,
        Err(PaymentError::Unavailable(_))
    ));
    // A request that does not add up never leaves.
    let mut short = request();
    short.items.pop();
    assert!(matches!(
        gone.create(&short).await,
        Err(PaymentError::InvalidRequest(_))
    ));
}

#[test]
fn a_callback_holds_only_with_the_shared_secrets_signature() {
    let provider = HttpPaymentProvider::new("http://127.0.0.1:1", "t", "geteilt").expect("valid");
    let body = br#"{"requestId":"00000000-0000-0000-0000-000000000003","transactionId":"sbx_1"}"#;
    let signed = CallbackKey::new(b"geteilt").sign(body);
    assert_eq!(
        provider.verify_callback(body, Some(&signed)),
        Ok(Callback {
            reference: PaymentId(Uuid::from_u128(3)),
            provider_reference: ProviderReference::parse("sbx_1").expect("valid"),
        })
    );
    let forged = CallbackKey::new(b"geraten").sign(body);
    assert_eq!(
        provider.verify_callback(body, Some(&forged)),
        Err(PaymentError::BadSignature)
    );
    assert_eq!(
        provider.verify_callback(body, None),
        Err(PaymentError::BadSignature)
    );
}
