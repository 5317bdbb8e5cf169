//! Twilio REST 2010-04-01 behaviour: auth, accounts, numbers, paging, calls, recordings.

use serde_json::Value;

use crate::support::*;

async fn setup() -> (telephony_emulator::Emulator, Api) {
    let emulator = start(seed(None, None)).await;
    let api = Api::new(&emulator);
    (emulator, api)
}

#[tokio::test]
async fn credential_check_accepts_the_auth_token_and_api_keys_and_rejects_the_rest() {
    let (emulator, api) = setup().await;
    let path = twilio_path(TW_SID, ".json");
    let cases: [(&str, &str, &str, u16); 6] = [
        ("auth token", TW_SID, TW_TOKEN, 200),
        ("api key", TW_KEY, TW_KEY_SECRET, 200),
        ("wrong token", TW_SID, "nope", 401),
        ("wrong key secret", TW_KEY, "nope", 401),
        (
            "another account's credentials",
            TW_OTHER_SID,
            TW_OTHER_TOKEN,
            401,
        ),
        (
            "subaccount credentials on the parent",
            TW_SUB_SID,
            TW_SUB_TOKEN,
            401,
        ),
    ];
    for (what, user, pass, want) in cases {
        let answer = api.twilio_get(&path, user, pass).await;
        assert_eq!(answer.status, want, "{what}");
        if want == 401 {
            assert_eq!(answer.json["code"], 20003, "{what}");
            assert_eq!(answer.json["message"], "Authenticate");
            assert_eq!(answer.json["status"], 401);
            assert_eq!(
                answer.json["more_info"],
                "https://www.twilio.com/docs/errors/20003"
            );
        } else {
            assert_eq!(answer.json["sid"], TW_SID);
            assert_eq!(answer.json["status"], "active");
        }
    }
    let no_auth = api.http.get(api.url(&path)).send().await.expect("sent");
    assert_eq!(no_auth.status().as_u16(), 401);
    emulator.shutdown().await;
}

#[tokio::test]
async fn parent_credentials_act_on_subaccounts_whose_numbers_are_separate() {
    let (emulator, api) = setup().await;
    let sub = api
        .twilio_get(
            &twilio_path(TW_SUB_SID, "/IncomingPhoneNumbers.json"),
            TW_SID,
            TW_TOKEN,
        )
        .await;
    assert_eq!(sub.status, 200);
    let by_key = api
        .twilio_get(&twilio_path(TW_SUB_SID, ".json"), TW_KEY, TW_KEY_SECRET)
        .await;
    assert_eq!(
        by_key.status, 200,
        "the parent's API key acts on the subaccount too"
    );
    let numbers: Vec<&str> = sub.json["incoming_phone_numbers"]
        .as_array()
        .expect("records")
        .iter()
        .filter_map(|n| n["phone_number"].as_str())
        .collect();
    assert_eq!(numbers, ["+16505550100"]);

    let created = api
        .twilio_post(
            "/2010-04-01/Accounts.json",
            TW_SID,
            TW_TOKEN,
            &[("FriendlyName", "org-42")],
        )
        .await;
    assert_eq!(created.status, 201);
    assert_eq!(created.json["friendly_name"], "org-42");
    assert_eq!(created.json["owner_account_sid"], TW_SID);
    assert_eq!(created.json["type"], "Full");
    let new_sid = created.json["sid"].as_str().expect("sid").to_string();
    let new_token = created.json["auth_token"]
        .as_str()
        .expect("token")
        .to_string();
    assert!(new_sid.starts_with("AC") && new_sid.len() == 34);
    let own = api
        .twilio_get(
            &twilio_path(&new_sid, "/IncomingPhoneNumbers.json"),
            &new_sid,
            &new_token,
        )
        .await;
    assert_eq!(own.status, 200);
    assert_eq!(own.json["incoming_phone_numbers"], Value::Array(vec![]));
    let listed = api
        .twilio_get(
            "/2010-04-01/Accounts.json?FriendlyName=org-42",
            TW_SID,
            TW_TOKEN,
        )
        .await;
    assert_eq!(listed.json["accounts"].as_array().map(Vec::len), Some(1));
    emulator.shutdown().await;
}

#[tokio::test]
async fn unknown_resources_answer_20404_naming_the_path() {
    let (emulator, api) = setup().await;
    let path = twilio_path(
        TW_SID,
        "/IncomingPhoneNumbers/PN00000000000000000000000000000000.json",
    );
    let answer = api.twilio_get(&path, TW_SID, TW_TOKEN).await;
    assert_eq!(answer.status, 404);
    assert_eq!(answer.json["code"], 20404);
    assert_eq!(
        answer.json["message"],
        format!("The requested resource {path} was not found")
    );
    let calls = api
        .twilio_get(
            &twilio_path(TW_SID, "/Calls/CA00000000000000000000000000000000.json"),
            TW_SID,
            TW_TOKEN,
        )
        .await;
    assert_eq!(calls.status, 404);
    // The number exists, but in the subaccount: not under the parent's path.
    let sub_number = emulator
        .state()
        .twilio_numbers
        .into_iter()
        .find(|n| n.account_sid == TW_SUB_SID)
        .expect("subaccount number");
    let wrong_owner = api
        .twilio_get(
            &twilio_path(
                TW_SID,
                &format!("/IncomingPhoneNumbers/{}.json", sub_number.sid),
            ),
            TW_SID,
            TW_TOKEN,
        )
        .await;
    assert_eq!(wrong_owner.status, 404);
    emulator.shutdown().await;
}

#[tokio::test]
async fn number_list_pages_walk_every_number_once() {
    let (emulator, api) = setup().await;
    let mut next = Some(twilio_path(TW_SID, "/IncomingPhoneNumbers.json?PageSize=3"));
    let mut seen = Vec::new();
    let mut pages = 0;
    while let Some(uri) = next {
        let page = api.twilio_get(&uri, TW_KEY, TW_KEY_SECRET).await;
        assert_eq!(page.status, 200, "{uri}");
        assert_eq!(page.json["page"], pages);
        assert_eq!(page.json["page_size"], 3);
        assert!(
            page.json["first_page_uri"]
                .as_str()
                .is_some_and(|u| u.ends_with("PageSize=3&Page=0"))
        );
        for n in page.json["incoming_phone_numbers"]
            .as_array()
            .expect("records")
        {
            seen.push(n["phone_number"].as_str().expect("number").to_string());
        }
        next = page.json["next_page_uri"].as_str().map(str::to_string);
        pages += 1;
    }
    assert_eq!(pages, 3);
    let want: Vec<String> = (0..7).map(|i| format!("+1415555010{i}")).collect();
    assert_eq!(seen, want);

    let filtered = api
        .twilio_get(
            &twilio_path(
                TW_SID,
                "/IncomingPhoneNumbers.json?PhoneNumber=%2B14155550103",
            ),
            TW_SID,
            TW_TOKEN,
        )
        .await;
    let records = filtered.json["incoming_phone_numbers"]
        .as_array()
        .expect("records");
    assert_eq!(records.len(), 1);
    assert_eq!(records[0]["phone_number"], "+14155550103");
    assert_eq!(filtered.json["next_page_uri"], Value::Null);

    let bad = api
        .twilio_get(
            &twilio_path(TW_SID, "/IncomingPhoneNumbers.json?PageToken=garbage"),
            TW_SID,
            TW_TOKEN,
        )
        .await;
    assert_eq!(
        (bad.status, bad.json["code"].clone()),
        (400, Value::from(21481))
    );
    emulator.shutdown().await;
}

#[tokio::test]
async fn updating_a_number_changes_its_voice_configuration() {
    let (emulator, api) = setup().await;
    let path = twilio_path(
        TW_SID,
        &format!("/IncomingPhoneNumbers/{TW_NUMBER_SID}.json"),
    );
    let updated = api
        .twilio_post(
            &path,
            TW_SID,
            TW_TOKEN,
            &[
                ("VoiceUrl", "https://gw.example/webhooks/twilio/voice"),
                ("VoiceMethod", "POST"),
                ("VoiceFallbackUrl", "https://gw.example/fallback"),
                ("StatusCallback", "https://gw.example/status"),
                ("FriendlyName", "Support line"),
            ],
        )
        .await;
    assert_eq!(updated.status, 200);
    assert_eq!(
        updated.json["voice_url"],
        "https://gw.example/webhooks/twilio/voice"
    );
    assert_eq!(
        updated.json["voice_fallback_url"],
        "https://gw.example/fallback"
    );
    assert_eq!(updated.json["status_callback"], "https://gw.example/status");
    assert_eq!(updated.json["friendly_name"], "Support line");
    assert_eq!(updated.json["capabilities"]["voice"], true);
    let fetched = api.twilio_get(&path, TW_SID, TW_TOKEN).await;
    assert_eq!(fetched.json, updated.json);
    let cleared = api
        .twilio_post(&path, TW_SID, TW_TOKEN, &[("VoiceUrl", "")])
        .await;
    assert_eq!(cleared.json["voice_url"], Value::Null);
    emulator.shutdown().await;
}

#[tokio::test]
async fn searching_and_buying_moves_a_number_from_inventory_to_the_account() {
    let (emulator, api) = setup().await;
    let search = api
        .twilio_get(
            &twilio_path(TW_SID, "/AvailablePhoneNumbers/US/Local.json?AreaCode=415"),
            TW_SID,
            TW_TOKEN,
        )
        .await;
    assert_eq!(search.status, 200);
    let found = search.json["available_phone_numbers"]
        .as_array()
        .expect("list");
    assert_eq!(found.len(), 1);
    assert_eq!(found[0]["phone_number"], "+14155550190");
    assert_eq!(
        found[0]["capabilities"]["SMS"], true,
        "available numbers use upper-case SMS"
    );
    let toll_free = api
        .twilio_get(
            &twilio_path(TW_SID, "/AvailablePhoneNumbers/US/TollFree.json"),
            TW_SID,
            TW_TOKEN,
        )
        .await;
    assert_eq!(
        toll_free.json["available_phone_numbers"][0]["phone_number"],
        "+18885550190"
    );

    let bought = api
        .twilio_post(
            &twilio_path(TW_SID, "/IncomingPhoneNumbers.json"),
            TW_SID,
            TW_TOKEN,
            &[
                ("PhoneNumber", "+14155550190"),
                ("VoiceUrl", "https://gw.example/v"),
            ],
        )
        .await;
    assert_eq!(bought.status, 201);
    assert_eq!(bought.json["voice_url"], "https://gw.example/v");
    let sid = bought.json["sid"].as_str().expect("sid").to_string();
    let again = api
        .twilio_post(
            &twilio_path(TW_SID, "/IncomingPhoneNumbers.json"),
            TW_SID,
            TW_TOKEN,
            &[("PhoneNumber", "+14155550190")],
        )
        .await;
    assert_eq!(
        (again.status, again.json["code"].clone()),
        (400, Value::from(21422))
    );
    let by_area = api
        .twilio_post(
            &twilio_path(TW_SID, "/IncomingPhoneNumbers.json"),
            TW_SID,
            TW_TOKEN,
            &[("AreaCode", "533")],
        )
        .await;
    assert_eq!(
        (by_area.status, by_area.json["code"].clone()),
        (400, Value::from(21452))
    );

    let released = api
        .twilio_delete(
            &twilio_path(TW_SID, &format!("/IncomingPhoneNumbers/{sid}.json")),
            TW_SID,
            TW_TOKEN,
        )
        .await;
    assert_eq!(released.status, 204);
    let gone = api
        .twilio_get(
            &twilio_path(TW_SID, &format!("/IncomingPhoneNumbers/{sid}.json")),
            TW_SID,
            TW_TOKEN,
        )
        .await;
    assert_eq!(gone.status, 404);
    emulator.shutdown().await;
}

#[tokio::test]
async fn calls_are_created_from_owned_numbers_redirected_recorded_and_hung_up() {
    let (emulator, api) = setup().await;
    let calls = twilio_path(TW_SID, "/Calls.json");
    let not_owned = api
        .twilio_post(
            &calls,
            TW_SID,
            TW_TOKEN,
            &[
                ("To", "+15550001111"),
                ("From", "+19999999999"),
                ("Url", "https://x/t"),
            ],
        )
        .await;
    assert_eq!(
        (not_owned.status, not_owned.json["code"].clone()),
        (400, Value::from(21210))
    );
    let missing_url = api
        .twilio_post(
            &calls,
            TW_SID,
            TW_TOKEN,
            &[("To", "+15550001111"), ("From", "+14155550100")],
        )
        .await;
    assert_eq!(missing_url.status, 400);

    let created = api
        .twilio_post(
            &calls,
            TW_SID,
            TW_TOKEN,
            &[
                ("To", "+15550001111"),
                ("From", "+14155550100"),
                ("Twiml", "<Response><Pause/></Response>"),
            ],
        )
        .await;
    assert_eq!(created.status, 201);
    assert_eq!(created.json["status"], "queued");
    assert_eq!(created.json["direction"], "outbound-api");
    let sid = created.json["sid"].as_str().expect("sid").to_string();
    let call_path = twilio_path(TW_SID, &format!("/Calls/{sid}.json"));
    assert_eq!(
        api.twilio_get(&call_path, TW_SID, TW_TOKEN).await.json["status"],
        "in-progress"
    );

    let redirected = api
        .twilio_post(
            &call_path,
            TW_SID,
            TW_TOKEN,
            &[("Url", "https://gw.example/next")],
        )
        .await;
    assert_eq!(redirected.status, 200);
    assert_eq!(
        emulator.state().calls[0].url.as_deref(),
        Some("https://gw.example/next")
    );

    let rec_path = twilio_path(TW_SID, &format!("/Calls/{sid}/Recordings.json"));
    let recording = api.twilio_post(&rec_path, TW_SID, TW_TOKEN, &[]).await;
    assert_eq!(recording.status, 201);
    assert_eq!(recording.json["status"], "in-progress");
    assert_eq!(recording.json["source"], "StartCallRecordingAPI");
    let re = recording.json["sid"].as_str().expect("sid").to_string();
    let one = twilio_path(TW_SID, &format!("/Calls/{sid}/Recordings/{re}.json"));
    for status in ["paused", "in-progress", "stopped"] {
        let changed = api
            .twilio_post(&one, TW_SID, TW_TOKEN, &[("Status", status)])
            .await;
        assert_eq!(
            (changed.status, changed.json["status"].clone()),
            (200, Value::from(status))
        );
    }

    let hung_up = api
        .twilio_post(&call_path, TW_SID, TW_TOKEN, &[("Status", "completed")])
        .await;
    assert_eq!(hung_up.status, 200);
    assert_eq!(hung_up.json["status"], "completed");
    let again = api
        .twilio_post(&call_path, TW_SID, TW_TOKEN, &[("Status", "completed")])
        .await;
    assert_eq!(
        (again.status, again.json["code"].clone()),
        (400, Value::from(21220))
    );
    let listed = api.twilio_get(&calls, TW_SID, TW_TOKEN).await;
    assert_eq!(listed.json["calls"].as_array().map(Vec::len), Some(1));
    emulator.shutdown().await;
}

#[tokio::test]
async fn a_per_account_rate_limit_answers_429_with_retry_after() {
    let (emulator, api) = setup().await;
    let path = twilio_path(TW_LIMITED_SID, ".json");
    let mut statuses = Vec::new();
    let mut limited = None;
    for _ in 0..6 {
        let answer = api
            .twilio_get(&path, TW_LIMITED_SID, TW_LIMITED_TOKEN)
            .await;
        statuses.push(answer.status);
        if answer.status == 429 {
            limited = Some(answer);
        }
    }
    // Six quick requests span at most two one-second windows of two: some are refused.
    assert!(statuses.contains(&429), "{statuses:?}");
    let limited = limited.expect("a 429");
    assert_eq!(limited.json["code"], 20429);
    assert_eq!(
        limited
            .headers
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("1")
    );
    // Other accounts are not limited.
    for _ in 0..5 {
        assert_eq!(
            api.twilio_get(&twilio_path(TW_SID, ".json"), TW_SID, TW_TOKEN)
                .await
                .status,
            200
        );
    }
    emulator.shutdown().await;
}
