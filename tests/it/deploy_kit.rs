//! The Salesforce setup kit in `deploy/salesforce/`: its metadata is well-formed and of the kind
//! its file name says, and it agrees with sfsync (the marker field, the event envelope, the
//! signature). Nothing here reaches Salesforce; the Apex itself is parsed by `.ci/apex-parse.mjs`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use sfsync::http::webhook::{signature, signed_event};

use crate::support::*;

const METADATA_NS: &str = "http://soap.sforce.com/2006/04/metadata";

fn kit() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("deploy/salesforce")
}

fn source() -> PathBuf {
    kit().join("force-app/main/default")
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The Metadata API root element a source file of this name must have.
fn root_for(name: &str) -> Option<&'static str> {
    [
        (".field-meta.xml", "CustomField"),
        (".object-meta.xml", "CustomObject"),
        (".permissionset-meta.xml", "PermissionSet"),
        (".cls-meta.xml", "ApexClass"),
        (".trigger-meta.xml", "ApexTrigger"),
        (".md-meta.xml", "CustomMetadata"),
        (".namedCredential-meta.xml", "NamedCredential"),
        (".externalCredential-meta.xml", "ExternalCredential"),
    ]
    .into_iter()
    .find(|(suffix, _)| name.ends_with(suffix))
    .map(|(_, root)| root)
}

/// The text of the first child element `name` of `node`.
fn child<'a>(node: roxmltree::Node<'a, 'a>, name: &str) -> Option<&'a str> {
    node.children()
        .find(|c| c.has_tag_name((METADATA_NS, name)))
        .and_then(|c| c.text())
}

fn children<'a, 'input>(
    node: roxmltree::Node<'a, 'input>,
    name: &'a str,
) -> impl Iterator<Item = roxmltree::Node<'a, 'input>> + 'a {
    node.children()
        .filter(move |c| c.has_tag_name((METADATA_NS, name)))
}

fn parse(text: &str) -> roxmltree::Document<'_> {
    roxmltree::Document::parse(text).expect("well-formed xml")
}

fn project_api_version() -> String {
    let project: serde_json::Value =
        serde_json::from_str(&read(&kit().join("sfdx-project.json"))).expect("sfdx-project.json");
    project["sourceApiVersion"]
        .as_str()
        .expect("sourceApiVersion")
        .to_string()
}

#[test]
fn every_metadata_file_is_well_formed_with_the_root_element_of_its_kind() {
    let files: Vec<PathBuf> = files_under(&source())
        .into_iter()
        .filter(|p| p.to_string_lossy().ends_with("-meta.xml"))
        .collect();
    let mut kinds = BTreeSet::new();
    for path in files {
        let name = path.file_name().expect("name").to_string_lossy();
        let want = root_for(&name).unwrap_or_else(|| panic!("{name}: no known metadata kind"));
        let text = read(&path);
        let doc = roxmltree::Document::parse(&text)
            .unwrap_or_else(|e| panic!("{}: not well-formed: {e}", path.display()));
        let root = doc.root_element();
        assert_eq!(root.tag_name().name(), want, "{}", path.display());
        kinds.insert(want);
        assert_eq!(
            root.tag_name().namespace(),
            Some(METADATA_NS),
            "{}",
            path.display()
        );
        // Salesforce refuses descriptions over 255 characters on permission sets and 1,000
        // elsewhere.
        let limit = if want == "PermissionSet" { 255 } else { 1000 };
        if let Some(d) = child(root, "description") {
            assert!(
                d.chars().count() <= limit,
                "{}: description too long",
                path.display()
            );
        }
    }
    let expected = [
        "ApexClass",
        "ApexTrigger",
        "CustomField",
        "CustomObject",
        "ExternalCredential",
        "NamedCredential",
        "PermissionSet",
    ];
    assert_eq!(kinds, BTreeSet::from(expected));
}

#[test]
fn every_apex_class_and_trigger_has_an_active_companion_at_the_project_api_version() {
    let version = project_api_version();
    let sources: Vec<PathBuf> = files_under(&source())
        .into_iter()
        .filter(|p| {
            matches!(
                p.extension().and_then(|e| e.to_str()),
                Some("cls" | "trigger")
            )
        })
        .collect();
    assert_eq!(sources.len(), 6, "{sources:?}");
    for path in sources {
        let meta = PathBuf::from(format!("{}-meta.xml", path.display()));
        let text = read(&meta);
        let doc = parse(&text);
        assert_eq!(
            child(doc.root_element(), "apiVersion"),
            Some(version.as_str()),
            "{}",
            meta.display()
        );
        assert_eq!(
            child(doc.root_element(), "status"),
            Some("Active"),
            "{}",
            meta.display()
        );
    }
}

#[test]
fn the_marker_field_is_unique_external_id_text_that_holds_every_marker_on_five_objects() {
    let marker = sfsync::config::OutboxConfig::default().marker_field;
    let longest = ["company", "contact", "product", "activity"]
        .into_iter()
        .map(|kind| sfsync::sync::push::marker(kind, u64::MAX).len())
        .max()
        .expect("kinds");
    for object in ["Account", "Contact", "Lead", "Opportunity", "Activity"] {
        let path = source().join(format!("objects/{object}/fields/{marker}.field-meta.xml"));
        let text = read(&path);
        let doc = parse(&text);
        let field = doc.root_element();
        assert_eq!(child(field, "fullName"), Some(marker.as_str()), "{object}");
        assert_eq!(child(field, "type"), Some("Text"), "{object}");
        assert_eq!(child(field, "externalId"), Some("true"), "{object}");
        assert_eq!(child(field, "unique"), Some("true"), "{object}");
        let length: usize = child(field, "length")
            .expect("length")
            .parse()
            .expect("number");
        assert!(length >= longest, "{object}: Text({length}) < {longest}");
    }
    // Task and Event share Activity's custom fields: no field file of their own.
    for object in ["Task", "Event"] {
        assert!(
            !source().join(format!("objects/{object}")).exists(),
            "{object}"
        );
    }
}

#[test]
fn the_integration_permission_set_grants_api_access_the_four_objects_activities_and_every_marker() {
    let text = read(&source().join("permissionsets/Sfsync_Integration.permissionset-meta.xml"));
    let doc = parse(&text);
    let set = doc.root_element();
    let user_permissions: BTreeSet<&str> = children(set, "userPermissions")
        .filter(|p| child(*p, "enabled") == Some("true"))
        .filter_map(|p| child(p, "name"))
        .collect();
    for name in ["ApiEnabled", "EditTask", "EditEvent"] {
        assert!(user_permissions.contains(name), "{name}");
    }
    for object in ["Account", "Contact", "Lead", "Opportunity"] {
        let p = children(set, "objectPermissions")
            .find(|p| child(*p, "object") == Some(object))
            .unwrap_or_else(|| panic!("no object permissions for {object}"));
        for (flag, want) in [
            ("allowRead", "true"),
            ("allowCreate", "true"),
            ("allowEdit", "true"),
            ("allowDelete", "false"),
            ("viewAllRecords", "true"),
        ] {
            assert_eq!(child(p, flag), Some(want), "{object}.{flag}");
        }
    }
    let marker = sfsync::config::OutboxConfig::default().marker_field;
    let granted: BTreeSet<String> = children(set, "fieldPermissions")
        .filter(|p| child(*p, "readable") == Some("true") && child(*p, "editable") == Some("true"))
        .filter_map(|p| child(p, "field").map(str::to_string))
        .collect();
    for object in ["Account", "Contact", "Lead", "Opportunity", "Task"] {
        assert!(granted.contains(&format!("{object}.{marker}")), "{object}");
    }
    // Every granted field exists in the kit (Task fields live on Activity).
    for field in &granted {
        let (object, name) = field.split_once('.').expect("Object.Field");
        let object = if object == "Task" { "Activity" } else { object };
        let path = source().join(format!("objects/{object}/fields/{name}.field-meta.xml"));
        assert!(path.exists(), "{field}: no {}", path.display());
    }
}

#[test]
fn the_named_credential_reaches_the_events_endpoint_through_a_principal_the_sender_set_grants() {
    let text = read(&source().join("namedCredentials/Sfsync_Events.namedCredential-meta.xml"));
    let doc = parse(&text);
    let credential = doc.root_element();
    assert_eq!(
        child(credential, "namedCredentialType"),
        Some("SecuredEndpoint")
    );
    assert_eq!(
        child(credential, "generateAuthorizationHeader"),
        Some("false")
    );
    let parameter = |kind: &str| {
        children(credential, "namedCredentialParameters")
            .find(|p| child(*p, "parameterType") == Some(kind))
            .unwrap_or_else(|| panic!("no {kind} parameter"))
    };
    let url =
        url::Url::parse(child(parameter("Url"), "parameterValue").expect("url")).expect("url");
    assert_eq!(url.scheme(), "https");
    let (prefix, key) = url.path().rsplit_once('/').expect("path");
    assert_eq!(prefix, "/webhooks/salesforce/events");
    assert!(
        key.len() >= 16
            && key
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    );
    let external = child(parameter("Authentication"), "externalCredential").expect("external");

    let text = read(&source().join(format!(
        "externalCredentials/{external}.externalCredential-meta.xml"
    )));
    let doc = parse(&text);
    let principal = children(doc.root_element(), "externalCredentialParameters")
        .find(|p| child(*p, "parameterType") == Some("NamedPrincipal"))
        .and_then(|p| child(p, "parameterName"))
        .expect("a named principal");

    let text = read(&source().join("permissionsets/Sfsync_Event_Sender.permissionset-meta.xml"));
    let doc = parse(&text);
    let access: Vec<&str> = children(doc.root_element(), "externalCredentialPrincipalAccesses")
        .filter(|a| child(*a, "enabled") == Some("true"))
        .filter_map(|a| child(a, "externalCredentialPrincipal"))
        .collect();
    assert_eq!(access, [format!("{external}-{principal}")]);

    let apex = read(&source().join("classes/SfsyncEvents.cls"));
    assert!(
        apex.contains(&format!("'callout:{}'", credential_name(&source()))),
        "the class posts through another credential"
    );
}

/// The named credential's API name: its file name.
fn credential_name(source: &Path) -> String {
    let file = files_under(&source.join("namedCredentials"))
        .pop()
        .expect("one named credential");
    let name = file
        .file_name()
        .expect("name")
        .to_string_lossy()
        .to_string();
    name.trim_end_matches(".namedCredential-meta.xml")
        .to_string()
}

/// The JSON field names the Apex writes: the first argument of `writeStringField('…'` and
/// `writeFieldName('…'`.
fn apex_json_fields(apex: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for call in [".writeStringField('", ".writeFieldName('"] {
        for (at, _) in apex.match_indices(call) {
            let rest = &apex[at + call.len()..];
            let end = rest.find('\'').expect("closing quote");
            out.insert(rest[..end].to_string());
        }
    }
    out
}

#[test]
fn the_apex_writes_exactly_the_envelope_fields_of_the_example_event_which_sfsync_parses() {
    let apex = read(&source().join("classes/SfsyncEvents.cls"));
    let written = apex_json_fields(&apex);
    let example = read(&kit().join("example-event.json"));
    let value: serde_json::Value = serde_json::from_str(&example).expect("json");
    let example_fields: BTreeSet<String> =
        value.as_object().expect("object").keys().cloned().collect();
    assert_eq!(written, example_fields);
    let event = signed_event::parse(example.trim_end().as_bytes()).expect("sfsync accepts it");
    assert_eq!(event.org_id.map(|o| o.to_string()).as_deref(), Some(ORG));
    assert_eq!(event.notifications.len(), 1);
    // An envelope field the Apex does not write is optional in sfsync's parser.
    let mut without_change_type = value.clone();
    without_change_type
        .as_object_mut()
        .expect("object")
        .remove("change_type");
    signed_event::parse(without_change_type.to_string().as_bytes()).expect("optional field");
}

/// The value of `private static final String NAME = '…';` in Apex source.
fn apex_constant<'a>(apex: &'a str, name: &str) -> &'a str {
    let marker = format!("String {name} = '");
    let at = apex
        .find(&marker)
        .unwrap_or_else(|| panic!("no constant {name}"));
    let rest = &apex[at + marker.len()..];
    &rest[..rest.find("';").expect("end of literal")]
}

#[test]
fn the_apex_tests_signing_vector_verifies_with_sfsyncs_verifier() {
    let apex = read(&source().join("classes/SfsyncEventsTest.cls"));
    let secret = apex_constant(&apex, "VECTOR_SECRET");
    let id = apex_constant(&apex, "VECTOR_ID");
    let timestamp = apex_constant(&apex, "VECTOR_TIMESTAMP");
    let body = apex_constant(&apex, "VECTOR_BODY");
    let expected = apex_constant(&apex, "VECTOR_SIGNATURE");
    let key = sfsync::domain::WebhookSecret::parse(secret).expect("whsec_ secret");
    let ts: i64 = timestamp.parse().expect("seconds");
    assert_eq!(
        signature::sign(key.key(), id, ts, body.as_bytes()),
        expected
    );
    let headers = signature::SignedHeaders {
        id: Some(id),
        timestamp: Some(timestamp),
        signature: Some(expected),
    };
    let secrets = [key];
    assert_eq!(
        signature::verify(headers, body.as_bytes(), &secrets, ts, 300),
        Ok(id)
    );
}

#[tokio::test]
async fn the_guides_example_event_signed_as_the_guide_says_is_accepted_by_the_service() {
    let app = spawn_app().await;
    // `BODY=$(cat example-event.json)` drops the trailing newline.
    let body = read(&kit().join("example-event.json"))
        .trim_end()
        .to_string();
    let id = format!("msg_check_{}", now());
    let resp = app
        .post_event(KEY, &id, now(), SECRET, body.as_bytes())
        .await;
    assert_eq!(resp.status(), 200);
    let answer: serde_json::Value = resp.json().await.expect("json");
    assert_eq!(answer["status"], "accepted");
    let wrong = app
        .post_event(KEY, &format!("{id}x"), now(), OLD_SECRET, body.as_bytes())
        .await;
    assert_eq!(wrong.status(), 401);
    app.stop().await;
}

#[test]
fn every_deploy_path_the_readmes_name_exists() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    for doc in ["README.md", "deploy/salesforce/README.md"] {
        let text = read(&root.join(doc));
        for (at, _) in text.match_indices("deploy/") {
            let path: String = text[at..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || "/._-".contains(*c))
                .collect();
            let path = path.trim_end_matches(['.', '/']);
            assert!(
                root.join(path).exists(),
                "{doc} names {path}, which does not exist"
            );
        }
    }
}
