//! Listings a page at a time: the organization's numbers (`limit` + `cursor`) and the carrier
//! account's numbers (one carrier page per request, an opaque cursor).

use http::StatusCode;
use serde_json::json;

use super::support::Gateway;

#[tokio::test]
async fn the_numbers_list_pages_in_a_stable_order_and_refuses_bad_paging() {
    let gw = Gateway::start().await;
    let (_, key) = gw.org("acme").await;
    let connection = gw.connect_twilio(&key).await;
    let mut imported = Vec::new();
    for e164 in ["+14155550100", "+14155550101"] {
        let (status, body) = gw
            .call(
                "POST",
                "/v1/numbers/import",
                Some(&key),
                Some(json!({"connection_id": connection, "e164": e164})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        imported.push(body["number"]["id"].as_str().expect("id").to_owned());
    }

    let (status, first) = gw
        .call("GET", "/v1/numbers?limit=1", Some(&key), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(first["data"].as_array().map(Vec::len), Some(1), "{first}");
    let cursor = first["next_cursor"].as_str().expect("a next page");
    let (status, second) = gw
        .call(
            "GET",
            &format!("/v1/numbers?limit=1&cursor={cursor}"),
            Some(&key),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{second}");
    assert!(second["next_cursor"].is_null(), "the last page: {second}");
    let paged = [&first["data"][0]["id"], &second["data"][0]["id"]];
    assert_eq!(
        paged,
        [&json!(imported[0]), &json!(imported[1])],
        "oldest first"
    );

    // Without paging parameters: the first page of 100, here everything.
    let (_, all) = gw.call("GET", "/v1/numbers", Some(&key), None).await;
    assert_eq!(all["data"].as_array().map(Vec::len), Some(2), "{all}");
    assert!(all["next_cursor"].is_null());

    for bad in ["limit=0", "limit=1001", "limit=many"] {
        let (status, body) = gw
            .call("GET", &format!("/v1/numbers?{bad}"), Some(&key), None)
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
    }
}

#[tokio::test]
async fn the_import_picker_hands_out_a_cursor_and_refuses_a_forged_one() {
    let gw = Gateway::start().await;
    let (_, key) = gw.org("acme").await;
    let connection = gw.connect_twilio(&key).await;
    let path = format!("/v1/carriers/{connection}/available-numbers");
    let (status, page) = gw.call("GET", &path, Some(&key), None).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(page["next_cursor"].is_null(), "one carrier page: {page}");

    // A cursor pointing elsewhere (base64url of another host's URL) is refused before any call.
    let forged = "aHR0cHM6Ly9ldmlsLmV4YW1wbGUvP1BhZ2U9Mg";
    for cursor in [forged, "not-base64!"] {
        let (status, body) = gw
            .call("GET", &format!("{path}?cursor={cursor}"), Some(&key), None)
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{cursor}: {body}");
        assert_eq!(body["error"]["code"], "invalid_request", "{body}");
    }
}
