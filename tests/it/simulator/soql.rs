//! INVALID_FIELD, SOQL and upsert.

use super::*;

#[tokio::test]
async fn a_field_the_object_lacks_is_invalid_field_in_every_write_and_in_soql() {
    let org = Org::start().await;
    let id = org.create("Account", json!({"Name": "A"})).await;

    let (s1, update) = sent(org.patch(
        &format!("/sobjects/Account/{id}"),
        json!({"Colour__c": "red"}),
    ))
    .await;
    let (s2, upsert) = sent(org.patch(
        "/sobjects/Account/Sfsync_Id__c/k-1",
        json!({"Name": "B", "Colour__c": "red"}),
    ))
    .await;
    let (_, collection) = sent(org.patch(
        "/composite/sobjects",
        json!({"records": [{"attributes": {"type": "Account"}, "id": id, "Colour__c": "red"}]}),
    ))
    .await;
    let (_, upserts) = sent(org.patch(
            "/composite/sobjects/Account/Sfsync_Id__c",
            json!({"records": [{"attributes": {"type": "Account"}, "Sfsync_Id__c": "k-2", "Name": "C", "Colour__c": "red"}]}),
        )).await;
    let (s3, soql) = org
        .query("SELECT Id FROM Account WHERE Colour__c = 'red'")
        .await;

    let expected = json!([{"message": "No such column 'Colour__c' on sobject of type Account", "errorCode": "INVALID_FIELD", "fields": []}]);
    assert_eq!((s1, &update), (StatusCode::BAD_REQUEST, &expected));
    assert_eq!((s2, &upsert), (StatusCode::BAD_REQUEST, &expected));
    assert_eq!(
        collection[0]["errors"][0],
        json!({"statusCode": "INVALID_FIELD", "message": "No such column 'Colour__c' on sobject of type Account", "fields": []})
    );
    assert_eq!(upserts[0]["errors"][0]["statusCode"], "INVALID_FIELD");
    assert_eq!(s3, StatusCode::BAD_REQUEST);
    assert_eq!(soql[0]["errorCode"], "INVALID_FIELD");
    let message = soql[0]["message"].as_str().unwrap();
    assert!(
        message
            .contains("ERROR at Row:1:Column:30\nNo such column 'Colour__c' on entity 'Account'."),
        "{message}"
    );
    assert_eq!(org.sim.list("Account").len(), 1);
}

#[tokio::test]
async fn soql_filters_sorts_counts_and_limits_as_salesforce_does() {
    let org = Org::start().await;
    for (name, industry, employees) in [
        ("Acme", Some("Energy"), 10),
        ("acme_2", Some("Banking"), 30),
        ("Beta", None, 20),
        ("Gamma", Some("Energy"), 40),
    ] {
        let mut body = json!({"Name": name, "NumberOfEmployees": employees});
        if let Some(i) = industry {
            body["Industry"] = json!(i);
        }
        org.create("Account", body).await;
    }
    let names = |v: &Value| -> Vec<String> {
        v["records"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["Name"].as_str().unwrap().to_string())
            .collect()
    };

    let (_, like) = org
        .query("SELECT Name FROM Account WHERE Name LIKE 'ACME%' ORDER BY Name")
        .await;
    let (_, underscore) = org
        .query("SELECT Name FROM Account WHERE Name LIKE 'acme\\_%'")
        .await;
    let (_, one_char) = org
        .query("SELECT Name FROM Account WHERE Name LIKE '_eta'")
        .await;
    let (_, ordered) = org
        .query("SELECT Name FROM Account ORDER BY Industry DESC NULLS LAST, NumberOfEmployees ASC")
        .await;
    let (_, nulls_first) = org
        .query("SELECT Name FROM Account ORDER BY Industry ASC NULLS FIRST, Name DESC")
        .await;
    let (_, count) = org
        .query("SELECT COUNT() FROM Account WHERE Industry = 'Energy'")
        .await;
    let (_, count_field) = org.query("SELECT COUNT(Industry) FROM Account").await;
    let (_, limited) = org
        .query("SELECT Name FROM Account ORDER BY Name LIMIT 2 OFFSET 1")
        .await;
    let (_, within) = org
        .query("SELECT Name FROM Account WHERE Industry IN ('Banking', 'energy') AND NOT Name = 'Gamma' ORDER BY Name")
        .await;
    let (_, grouped) = org
        .query("SELECT Name FROM Account WHERE (Industry = 'Energy' OR Industry = null) AND NumberOfEmployees > 15 ORDER BY Name")
        .await;
    let (_, today) = org
        .query("SELECT Name FROM Account WHERE CreatedDate = TODAY AND CreatedDate > LAST_WEEK")
        .await;

    assert_eq!(names(&like), ["Acme", "acme_2"], "LIKE ignores case");
    assert_eq!(
        names(&underscore),
        ["acme_2"],
        "\\_ is a literal underscore"
    );
    assert_eq!(names(&one_char), ["Beta"], "_ is one character");
    assert_eq!(names(&ordered), ["Acme", "Gamma", "acme_2", "Beta"]);
    assert_eq!(names(&nulls_first), ["Beta", "acme_2", "Gamma", "Acme"]);
    assert_eq!(count, json!({"totalSize": 2, "done": true, "records": []}));
    assert_eq!(count_field["records"][0]["expr0"], 3);
    assert_eq!(
        count_field["records"][0]["attributes"]["type"],
        "AggregateResult"
    );
    assert_eq!(names(&limited), ["acme_2", "Beta"]);
    assert_eq!(limited["totalSize"], 2);
    assert_eq!(names(&within), ["Acme", "acme_2"]);
    assert_eq!(names(&grouped), ["Beta", "Gamma"]);
    assert_eq!(today["totalSize"], 4);
}

#[tokio::test]
async fn upsert_only_uses_external_ids_and_update_only_never_creates() {
    let org = Org::start().await;

    let (not_ext, v) =
        sent(org.patch("/sobjects/Account/Name/Acme", json!({"Website": "x"}))).await;
    let (update_only, _) = sent(org.patch(
        "/sobjects/Account/Sfsync_Id__c/none?updateOnly=true",
        json!({"Name": "X"}),
    ))
    .await;
    let (by_id, created) =
        sent(org.post("/sobjects/Account/Id", json!({"Name": "Made through Id"}))).await;
    let (clash, _) = sent(org.post(
        "/sobjects/Account",
        json!({"Name": "Twin", "Sfsync_Id__c": "same"}),
    ))
    .await;
    let (_, second) = sent(org.post(
        "/sobjects/Account",
        json!({"Name": "Twin 2", "Sfsync_Id__c": "SAME"}),
    ))
    .await;

    assert_eq!(not_ext, StatusCode::NOT_FOUND, "Name is not an External ID");
    assert_eq!(v[0]["errorCode"], "NOT_FOUND");
    assert_eq!(update_only, StatusCode::NOT_FOUND);
    assert_eq!(by_id, StatusCode::CREATED);
    assert!(created["id"].as_str().unwrap().starts_with("001"));
    assert_eq!(clash, StatusCode::CREATED);
    assert_eq!(second[0]["errorCode"], "DUPLICATE_VALUE");
    assert!(
        second[0]["message"].as_str().unwrap().starts_with(
            "duplicate value found: Sfsync_Id__c duplicates value on record with id: 001"
        ),
        "the marker is Unique: {second}"
    );
    assert_eq!(org.sim.list("Account").len(), 2);
}
