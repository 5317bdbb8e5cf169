//! Shared fixtures: a seed built in code, an HTTP client, and a webhook receiver that records
//! what the emulator sends.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use telephony_emulator::{
    ApiKey, AvailableNumber, Capabilities, Emulator, NumberType, OrderBehaviour, Seed,
    TelnyxAccountSeed, TelnyxNumber, TelnyxSeed, TexmlApplication, TwilioAccountSeed, TwilioNumber,
    TwilioSeed,
};

pub const TW_SID: &str = "AC11111111111111111111111111111111";
pub const TW_TOKEN: &str = "token-parent";
pub const TW_KEY: &str = "SK11111111111111111111111111111111";
pub const TW_KEY_SECRET: &str = "key-secret";
pub const TW_SUB_SID: &str = "AC22222222222222222222222222222222";
pub const TW_SUB_TOKEN: &str = "token-sub";
pub const TW_OTHER_SID: &str = "AC33333333333333333333333333333333";
pub const TW_OTHER_TOKEN: &str = "token-other";
pub const TW_LIMITED_SID: &str = "AC44444444444444444444444444444444";
pub const TW_LIMITED_TOKEN: &str = "token-limited";
pub const TW_NUMBER_SID: &str = "PN11111111111111111111111111111111";

pub const TX_KEY: &str = "KEYtest0000000000000000000000000001";
pub const TX_SID: &str = "acct-telnyx-1";
pub const TX_LIMITED_KEY: &str = "KEYlimited00000000000000000000000002";
/// The telnyx-java test seed from SIGNATURE_VECTORS.md section 2.2.
pub const TX_SIGNING_SEED: &str = "i1xxSkIuQOY9H8laaRslIoYGTJ1NwBAFdjsQwiwJH04=";
pub const TX_PUBLIC_KEY: &str = "jrMBoswHlhhVx2W2Www72WU/xn4UMpjreslD0m2u0qs=";
pub const TX_APP_ID: &str = "1293384261075731499";
pub const TX_NUMBER_ID: &str = "1293384261075731001";

fn twilio_number(phone: &str) -> TwilioNumber {
    TwilioNumber {
        phone_number: phone.into(),
        ..TwilioNumber::default()
    }
}

/// The world most tests start from. `voice_url` and `status_url` point numbers at a receiver.
pub fn seed(voice_url: Option<&str>, status_url: Option<&str>) -> Seed {
    let mut main_numbers: Vec<TwilioNumber> = (0..7)
        .map(|i| twilio_number(&format!("+1415555010{i}")))
        .collect();
    main_numbers[0].sid = TW_NUMBER_SID.into();
    main_numbers[0].voice_url = voice_url.map(str::to_string);
    main_numbers[0].status_callback = status_url.map(str::to_string);
    main_numbers[0].capabilities = Capabilities {
        voice: true,
        sms: true,
        mms: true,
        fax: false,
    };
    let available = |phone: &str, number_type: NumberType| AvailableNumber {
        phone_number: phone.into(),
        number_type,
        region: Some("CA".into()),
        ..AvailableNumber::default()
    };
    Seed {
        twilio: TwilioSeed {
            accounts: vec![
                TwilioAccountSeed {
                    sid: TW_SID.into(),
                    auth_token: TW_TOKEN.into(),
                    friendly_name: Some("Parent".into()),
                    api_keys: vec![ApiKey {
                        sid: TW_KEY.into(),
                        secret: TW_KEY_SECRET.into(),
                    }],
                    numbers: main_numbers,
                    subaccounts: vec![TwilioAccountSeed {
                        sid: TW_SUB_SID.into(),
                        auth_token: TW_SUB_TOKEN.into(),
                        numbers: vec![twilio_number("+16505550100")],
                        ..TwilioAccountSeed::default()
                    }],
                    ..TwilioAccountSeed::default()
                },
                TwilioAccountSeed {
                    sid: TW_OTHER_SID.into(),
                    auth_token: TW_OTHER_TOKEN.into(),
                    ..TwilioAccountSeed::default()
                },
                TwilioAccountSeed {
                    sid: TW_LIMITED_SID.into(),
                    auth_token: TW_LIMITED_TOKEN.into(),
                    rate_limit_per_second: Some(2),
                    ..TwilioAccountSeed::default()
                },
            ],
            available_numbers: vec![
                available("+14155550190", NumberType::Local),
                available("+12125550190", NumberType::Local),
                available("+14245550190", NumberType::Mobile),
                available("+18885550190", NumberType::TollFree),
            ],
        },
        telnyx: TelnyxSeed {
            accounts: vec![
                TelnyxAccountSeed {
                    api_key: TX_KEY.into(),
                    account_sid: TX_SID.into(),
                    signing_seed: TX_SIGNING_SEED.into(),
                    numbers: (0..5)
                        .map(|i| TelnyxNumber {
                            id: if i == 0 {
                                TX_NUMBER_ID.into()
                            } else {
                                String::new()
                            },
                            phone_number: format!("+1312555010{i}"),
                            connection_id: (i == 0).then(|| TX_APP_ID.to_string()),
                            ..TelnyxNumber::default()
                        })
                        .collect(),
                    texml_applications: vec![TexmlApplication {
                        id: TX_APP_ID.into(),
                        friendly_name: "agents".into(),
                        active: true,
                        voice_url: voice_url.unwrap_or("http://127.0.0.1:9/unused").into(),
                        status_callback: status_url.map(str::to_string),
                        ..TexmlApplication::default()
                    }],
                    ..TelnyxAccountSeed::default()
                },
                TelnyxAccountSeed {
                    api_key: TX_LIMITED_KEY.into(),
                    account_sid: "acct-telnyx-limited".into(),
                    signing_seed: TX_SIGNING_SEED.into(),
                    rate_limit_per_second: Some(2),
                    ..TelnyxAccountSeed::default()
                },
            ],
            available_numbers: vec![
                available("+13125550190", NumberType::Local),
                available("+13125550191", NumberType::Local),
                available("+18445550190", NumberType::TollFree),
            ],
            number_orders: OrderBehaviour {
                pending_polls: 2,
                pending_seconds: 0,
            },
        },
    }
}

pub async fn start(seed: Seed) -> Emulator {
    Emulator::start(seed, "127.0.0.1:0".parse().expect("literal address"))
        .await
        .expect("emulator starts")
}

/// A plain-HTTP client (rustls with ring is configured only because reqwest requires a TLS
/// backend; nothing here uses TLS).
pub fn client() -> reqwest::Client {
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("ring supports the default versions")
    .with_root_certificates(rustls::RootCertStore::empty())
    .with_no_client_auth();
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .no_proxy()
        .build()
        .expect("client builds")
}

/// One answered request: status, headers and the body as JSON (`Null` when empty or not JSON).
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub json: Value,
}

async fn answer(response: reqwest::Response) -> Answer {
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.text().await.expect("body reads");
    Answer {
        status,
        headers,
        json: serde_json::from_str(&text).unwrap_or(Value::Null),
    }
}

/// Test-side client for both carriers.
#[derive(Debug, Clone)]
pub struct Api {
    pub base: url::Url,
    pub http: reqwest::Client,
}

impl Api {
    pub fn new(emulator: &Emulator) -> Api {
        Api {
            base: emulator.base_url(),
            http: client(),
        }
    }

    pub fn url(&self, path_and_query: &str) -> String {
        format!(
            "{}{}",
            self.base.as_str().trim_end_matches('/'),
            path_and_query
        )
    }

    pub async fn twilio_get(&self, path: &str, user: &str, pass: &str) -> Answer {
        let response = self
            .http
            .get(self.url(path))
            .basic_auth(user, Some(pass))
            .send()
            .await
            .expect("request sent");
        answer(response).await
    }

    pub async fn twilio_post(
        &self,
        path: &str,
        user: &str,
        pass: &str,
        form: &[(&str, &str)],
    ) -> Answer {
        let response = self
            .http
            .post(self.url(path))
            .basic_auth(user, Some(pass))
            .form(form)
            .send()
            .await
            .expect("request sent");
        answer(response).await
    }

    pub async fn twilio_delete(&self, path: &str, user: &str, pass: &str) -> Answer {
        let response = self
            .http
            .delete(self.url(path))
            .basic_auth(user, Some(pass))
            .send()
            .await
            .expect("request sent");
        answer(response).await
    }

    pub async fn telnyx(&self, method: &str, path: &str, key: &str, body: Option<Value>) -> Answer {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("valid method");
        let mut request = self.http.request(method, self.url(path)).bearer_auth(key);
        if let Some(body) = body {
            request = request.json(&body);
        }
        answer(request.send().await.expect("request sent")).await
    }

    pub async fn telnyx_form(
        &self,
        method: &str,
        path: &str,
        key: &str,
        form: &[(&str, &str)],
    ) -> Answer {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("valid method");
        let request = self
            .http
            .request(method, self.url(path))
            .bearer_auth(key)
            .form(form);
        answer(request.send().await.expect("request sent")).await
    }

    pub async fn control(&self, method: &str, path: &str, body: Option<Value>) -> Answer {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("valid method");
        let mut request = self.http.request(method, self.url(path));
        if let Some(body) = body {
            request = request.json(&body);
        }
        answer(request.send().await.expect("request sent")).await
    }
}

pub fn twilio_path(account: &str, rest: &str) -> String {
    format!("/2010-04-01/Accounts/{account}{rest}")
}

/// A request the receiver got.
#[derive(Debug, Clone)]
pub struct Captured {
    pub method: String,
    /// Full URL as requested (`http://127.0.0.1:PORT/path?query`).
    pub url: String,
    pub headers: http::HeaderMap,
    pub body: String,
}

impl Captured {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn form(&self) -> Vec<(String, String)> {
        serde_urlencoded::from_str(&self.body).expect("form body")
    }

    pub fn param(&self, name: &str) -> Option<String> {
        self.form()
            .into_iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
    }
}

/// A webhook target answering every request with a fixed TwiML body.
#[derive(Debug, Clone)]
pub struct Receiver {
    pub addr: SocketAddr,
    pub captured: Arc<Mutex<Vec<Captured>>>,
}

pub const TWIML: &str =
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Say>hello</Say></Response>";

impl Receiver {
    pub async fn start() -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind receiver");
        let addr = listener.local_addr().expect("receiver address");
        let captured: Arc<Mutex<Vec<Captured>>> = Arc::default();
        let store = Arc::clone(&captured);
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let store = Arc::clone(&store);
                tokio::spawn(async move {
                    let service =
                        service_fn(move |request: http::Request<hyper::body::Incoming>| {
                            let store = Arc::clone(&store);
                            async move {
                                let (parts, body) = request.into_parts();
                                let body = body
                                    .collect()
                                    .await
                                    .map(|c| c.to_bytes())
                                    .unwrap_or_default();
                                let path = parts
                                    .uri
                                    .path_and_query()
                                    .map(|p| p.as_str().to_string())
                                    .unwrap_or_default();
                                store.lock().expect("receiver lock").push(Captured {
                                    method: parts.method.to_string(),
                                    url: format!("http://{addr}{path}"),
                                    headers: parts.headers,
                                    body: String::from_utf8_lossy(&body).into_owned(),
                                });
                                let mut response = http::Response::new(Full::new(
                                    Bytes::from_static(TWIML.as_bytes()),
                                ));
                                response.headers_mut().insert(
                                    "content-type",
                                    http::HeaderValue::from_static("text/xml"),
                                );
                                Ok::<_, std::convert::Infallible>(response)
                            }
                        });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Receiver { addr, captured }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn requests(&self) -> Vec<Captured> {
        self.captured.lock().expect("receiver lock").clone()
    }

    /// Waits (briefly) for at least `n` requests: status callbacks after a REST hang-up are sent
    /// in the background, as the carriers do.
    pub async fn wait_for(&self, n: usize) -> Vec<Captured> {
        for _ in 0..200 {
            let requests = self.requests();
            if requests.len() >= n {
                return requests;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        panic!(
            "expected {n} webhook requests, got {}",
            self.requests().len()
        );
    }
}
