//! The factory picks the carrier per organization at run time, behind `Arc<dyn Carrier>`.

use std::sync::Arc;

use telephony_carrier::{
    Carrier, CarrierClients, CarrierCredentials, CarrierError, Provider, TelnyxConfig, TwilioAuth,
    TwilioConfig, TwilioCredentials,
};
use telephony_vault::SecretString;

use super::support::*;

fn assert_obj(_: &dyn Carrier) {}
fn is_send_sync<T: Send + Sync + ?Sized>() {}

#[test]
fn the_trait_is_object_safe_send_and_sync() {
    is_send_sync::<dyn Carrier>();
    is_send_sync::<Arc<dyn Carrier>>();
    is_send_sync::<CarrierClients>();
    let _: fn(&dyn Carrier) = assert_obj;
}

#[tokio::test]
async fn one_factory_serves_both_carriers_with_each_organizations_credentials() {
    let emulator = emulator().await;
    let clients = clients(&emulator);
    let carriers: Vec<Arc<dyn Carrier>> = vec![
        clients.client(CarrierCredentials::Twilio(twilio_token(TWILIO_TOKEN))),
        clients.client(CarrierCredentials::Telnyx(telnyx_credentials(TELNYX_KEY))),
    ];
    let mut seen = Vec::new();
    for carrier in &carriers {
        assert_obj(carrier.as_ref());
        let account = carrier.verify_credentials().await.unwrap();
        seen.push((carrier.provider(), account.account_id));
    }
    assert_eq!(
        seen,
        [
            (Provider::Twilio, TWILIO_SID.to_owned()),
            (Provider::Telnyx, TELNYX_ACCOUNT.to_owned())
        ]
    );
    let wrong = clients.client(CarrierCredentials::Twilio(twilio_token("stale")));
    assert!(matches!(
        wrong.verify_credentials().await,
        Err(CarrierError::InvalidCredentials)
    ));
}

#[test]
fn a_configuration_that_cannot_work_is_refused_up_front() {
    let unknown_region = TwilioConfig {
        region: "zz9".to_owned(),
        ..TwilioConfig::default()
    };
    assert!(matches!(
        CarrierClients::new(unknown_region, TelnyxConfig::default()),
        Err(CarrierError::InvalidConfig(_))
    ));
    let telnyx = TelnyxConfig {
        base_url: "mailto:ops@example.com".parse().unwrap(),
        ..TelnyxConfig::default()
    };
    assert!(matches!(
        CarrierClients::new(TwilioConfig::default(), telnyx),
        Err(CarrierError::InvalidConfig(_))
    ));
    assert!(CarrierClients::new(TwilioConfig::default(), TelnyxConfig::default()).is_ok());
}

#[test]
fn each_connection_reaches_twilio_in_its_own_region() {
    let clients = CarrierClients::new(TwilioConfig::default(), TelnyxConfig::default())
        .expect("the real carriers' configuration");
    let creds = || TwilioCredentials {
        account_sid: "AC00000000000000000000000000000001".into(),
        auth: TwilioAuth::AuthToken(SecretString::new("token")),
    };
    let host = |region: Option<&str>| {
        clients
            .twilio_in_region(creds(), region)
            .map(|c| c.base_url().host_str().unwrap_or_default().to_owned())
    };
    assert_eq!(host(None).as_deref().ok(), Some("api.twilio.com"));
    assert_eq!(host(Some("us1")).as_deref().ok(), Some("api.twilio.com"));
    assert_eq!(
        host(Some("ie1")).as_deref().ok(),
        Some("api.dublin.ie1.twilio.com")
    );
    assert_eq!(
        host(Some("au1")).as_deref().ok(),
        Some("api.sydney.au1.twilio.com")
    );
    assert!(matches!(
        host(Some("zz9")),
        Err(CarrierError::InvalidConfig(_))
    ));
    assert!(
        clients
            .client_in_region(CarrierCredentials::Twilio(creds()), Some("ie1"))
            .is_ok()
    );
}

#[test]
fn a_custom_base_url_is_used_whatever_the_region() {
    let base: url::Url = "http://127.0.0.1:4010/".parse().expect("url");
    let clients = CarrierClients::new(
        TwilioConfig {
            base_url: Some(base.clone()),
            ..TwilioConfig::default()
        },
        TelnyxConfig::default(),
    )
    .expect("an emulator's configuration");
    let creds = TwilioCredentials {
        account_sid: "AC00000000000000000000000000000001".into(),
        auth: TwilioAuth::AuthToken(SecretString::new("token")),
    };
    let client = clients
        .twilio_in_region(creds, Some("au1"))
        .expect("client");
    assert_eq!(client.base_url(), &base);
}
