//! The standard objects of the simulated org: Account, Contact, Lead, Opportunity, Task, Event,
//! User and OpportunityStage, with their fields, picklists and key prefixes; the default
//! opportunity stages; and the fields the default Outbound Message actions send.

use super::schema::{FieldDef, FieldType as T, ObjectDef};

/// The system fields of an object whose record id label is `label`; `owned` adds `OwnerId`.
pub(crate) fn system_fields(label: &str, owned: bool) -> Vec<FieldDef> {
    let user = &["User"];
    let mut fields = vec![
        system("Id", T::Id).label(&format!("{label} ID")),
        system("IsDeleted", T::Boolean).label("Deleted"),
        system("CreatedDate", T::Datetime),
        system("CreatedById", T::Reference).refs(user),
        system("LastModifiedDate", T::Datetime),
        system("LastModifiedById", T::Reference).refs(user),
        system("SystemModstamp", T::Datetime),
    ];
    if owned {
        fields.push(
            FieldDef::new("OwnerId", T::Reference)
                .required()
                .defaulted()
                .refs(user),
        );
    }
    fields
}

/// A field the org sets on every record: required, read-only, defaulted.
fn system(name: &str, kind: T) -> FieldDef {
    FieldDef::new(name, kind).required().read_only().defaulted()
}

fn object(name: &str, prefix: &str, plural: &str, own: Vec<FieldDef>) -> ObjectDef {
    let owned = !matches!(name, "User" | "OpportunityStage");
    let mut fields = system_fields(name, owned);
    fields.extend(own);
    ObjectDef {
        name: name.to_string(),
        label: name.to_string(),
        label_plural: plural.to_string(),
        key_prefix: prefix.to_string(),
        custom: false,
        createable: true,
        updateable: true,
        deletable: true,
        queryable: true,
        mergeable: matches!(name, "Account" | "Contact" | "Lead"),
        fields,
    }
}

fn text(name: &str, length: u32) -> FieldDef {
    let mut f = FieldDef::new(name, T::String);
    f.length = length;
    f
}

fn lookup(name: &str, to: &[&str]) -> FieldDef {
    FieldDef::new(name, T::Reference).refs(to)
}

fn picklist(name: &str, values: &[&str]) -> FieldDef {
    FieldDef::new(name, T::Picklist).values(values, None)
}

const INDUSTRIES: &[&str] = &[
    "Agriculture",
    "Apparel",
    "Banking",
    "Biotechnology",
    "Chemicals",
    "Communications",
    "Construction",
    "Consulting",
    "Education",
    "Electronics",
    "Energy",
    "Engineering",
    "Entertainment",
    "Environmental",
    "Finance",
    "Food & Beverage",
    "Government",
    "Healthcare",
    "Hospitality",
    "Insurance",
    "Machinery",
    "Manufacturing",
    "Media",
    "Not For Profit",
    "Other",
    "Recreation",
    "Retail",
    "Shipping",
    "Technology",
    "Telecommunications",
    "Transportation",
    "Utilities",
];
const LEAD_SOURCES: &[&str] = &[
    "Web",
    "Phone Inquiry",
    "Partner Referral",
    "Purchased List",
    "Other",
];
const RATINGS: &[&str] = &["Hot", "Warm", "Cold"];
const SALUTATIONS: &[&str] = &["Mr.", "Ms.", "Mrs.", "Dr.", "Prof."];
const ACTIVITY_TYPES: &[&str] = &["Call", "Email", "Meeting", "Other"];

fn address(prefix: &str) -> Vec<FieldDef> {
    vec![
        FieldDef::new(&format!("{prefix}Street"), T::Textarea).label(&format!("{prefix} Street")),
        text(&format!("{prefix}City"), 40),
        text(&format!("{prefix}State"), 80),
        text(&format!("{prefix}PostalCode"), 20),
        text(&format!("{prefix}Country"), 80),
    ]
}

fn account() -> ObjectDef {
    let mut own = vec![
        text("Name", 255)
            .label("Account Name")
            .required()
            .name_field(),
        text("AccountNumber", 40),
        text("Site", 80).label("Account Site"),
        FieldDef::new("Website", T::Url),
        picklist("Industry", INDUSTRIES),
        FieldDef::new("AnnualRevenue", T::Currency),
        FieldDef::new("NumberOfEmployees", T::Int).label("Employees"),
        FieldDef::new("Phone", T::Phone),
        FieldDef::new("Fax", T::Phone),
        picklist(
            "Type",
            &[
                "Prospect",
                "Customer - Direct",
                "Customer - Channel",
                "Channel Partner / Reseller",
                "Installation Partner",
                "Technology Partner",
                "Other",
            ],
        ),
        FieldDef::new("Description", T::Textarea),
        picklist("Rating", RATINGS),
    ];
    own.extend(address("Billing"));
    own.extend(address("Shipping"));
    own.push(lookup("ParentId", &["Account"]));
    own.push(lookup("MasterRecordId", &["Account"]).read_only());
    object("Account", "001", "Accounts", own)
}

/// A name as the org holds one for a person or a user: first, last, and the full name it
/// composes from them.
fn names() -> [FieldDef; 3] {
    [
        text("FirstName", 40),
        text("LastName", 80).required(),
        text("Name", 121)
            .label("Full Name")
            .read_only()
            .name_field(),
    ]
}

fn person_names() -> Vec<FieldDef> {
    let mut fields = Vec::from(names());
    fields.push(picklist("Salutation", SALUTATIONS));
    fields
}

fn contact() -> ObjectDef {
    let mut own = person_names();
    own.extend([
        FieldDef::new("Email", T::Email),
        text("Title", 128),
        FieldDef::new("Phone", T::Phone).label("Business Phone"),
        FieldDef::new("MobilePhone", T::Phone),
        lookup("AccountId", &["Account"]),
        text("Department", 80),
        FieldDef::new("Description", T::Textarea),
        picklist("LeadSource", LEAD_SOURCES),
        FieldDef::new("Birthdate", T::Date),
    ]);
    own.extend(address("Mailing"));
    own.push(lookup("MasterRecordId", &["Contact"]).read_only());
    object("Contact", "003", "Contacts", own)
}

fn lead() -> ObjectDef {
    let statuses = [
        "Open - Not Contacted",
        "Working - Contacted",
        "Closed - Converted",
        "Closed - Not Converted",
    ];
    let mut own = person_names();
    own.extend([
        text("Company", 255).required(),
        FieldDef::new("Status", T::Picklist)
            .values(&statuses, Some("Open - Not Contacted"))
            .required(),
        FieldDef::new("Email", T::Email),
        text("Title", 128),
        FieldDef::new("Phone", T::Phone),
        FieldDef::new("MobilePhone", T::Phone),
        picklist("LeadSource", LEAD_SOURCES),
        picklist("Industry", INDUSTRIES),
        FieldDef::new("Website", T::Url),
        FieldDef::new("Description", T::Textarea),
        picklist("Rating", RATINGS),
        FieldDef::new("Street", T::Textarea),
        text("City", 40),
        text("State", 80),
        text("PostalCode", 20),
        text("Country", 80),
        FieldDef::new("AnnualRevenue", T::Currency),
        FieldDef::new("NumberOfEmployees", T::Int),
        FieldDef::new("IsConverted", T::Boolean)
            .label("Converted")
            .read_only(),
        FieldDef::new("ConvertedDate", T::Date).read_only(),
        lookup("ConvertedAccountId", &["Account"]).read_only(),
        lookup("ConvertedContactId", &["Contact"]).read_only(),
        lookup("ConvertedOpportunityId", &["Opportunity"]).read_only(),
        lookup("MasterRecordId", &["Lead"]).read_only(),
    ]);
    object("Lead", "00Q", "Leads", own)
}

fn opportunity() -> ObjectDef {
    let own = vec![
        text("Name", 120).required().name_field(),
        FieldDef::new("StageName", T::Picklist)
            .label("Stage")
            .required(),
        FieldDef::new("CloseDate", T::Date).required(),
        FieldDef::new("Amount", T::Currency),
        lookup("AccountId", &["Account"]),
        FieldDef::new("Probability", T::Percent).label("Probability (%)"),
        FieldDef::new("IsClosed", T::Boolean)
            .label("Closed")
            .read_only(),
        FieldDef::new("IsWon", T::Boolean).label("Won").read_only(),
        picklist(
            "ForecastCategoryName",
            &["Omitted", "Pipeline", "Best Case", "Commit", "Closed"],
        )
        .label("Forecast Category"),
        picklist("LeadSource", LEAD_SOURCES),
        picklist(
            "Type",
            &[
                "Existing Customer - Upgrade",
                "Existing Customer - Replacement",
                "Existing Customer - Downgrade",
                "New Customer",
            ],
        ),
        text("NextStep", 255),
        lookup("ContactId", &["Contact"]),
        FieldDef::new("Description", T::Textarea),
    ];
    object("Opportunity", "006", "Opportunities", own)
}

fn activity_links() -> Vec<FieldDef> {
    vec![
        lookup("WhoId", &["Contact", "Lead"]).label("Name ID"),
        lookup("WhatId", &["Account", "Opportunity"]).label("Related To ID"),
        FieldDef::new("Description", T::Textarea),
        picklist("Type", ACTIVITY_TYPES),
    ]
}

/// The fields the org derives on every activity, last in its field list: the Account it rolls
/// up to and whether it is archived.
fn activity_derived() -> [FieldDef; 2] {
    [
        lookup("AccountId", &["Account"]).read_only(),
        FieldDef::new("IsArchived", T::Boolean)
            .label("Archived")
            .read_only(),
    ]
}

fn task() -> ObjectDef {
    let statuses = [
        "Not Started",
        "In Progress",
        "Completed",
        "Waiting on someone else",
        "Deferred",
    ];
    let subtypes = ["Task", "Email", "ListEmail", "Cadence", "Call", "LinkedIn"];
    let mut own = vec![
        text("Subject", 255),
        FieldDef::new("Status", T::Picklist)
            .values(&statuses, Some("Not Started"))
            .required(),
        FieldDef::new("Priority", T::Picklist)
            .values(&["High", "Normal", "Low"], Some("Normal"))
            .required(),
        FieldDef::new("ActivityDate", T::Date).label("Due Date Only"),
    ];
    own.extend(activity_links());
    own.extend([
        picklist("TaskSubtype", &subtypes)
            .restricted()
            .create_only(),
        FieldDef::new("IsClosed", T::Boolean)
            .label("Closed")
            .read_only(),
        FieldDef::new("CompletedDateTime", T::Datetime).read_only(),
    ]);
    own.extend(activity_derived());
    object("Task", "00T", "Tasks", own)
}

fn event() -> ObjectDef {
    let mut own = vec![
        text("Subject", 255),
        FieldDef::new("StartDateTime", T::Datetime),
        FieldDef::new("EndDateTime", T::Datetime),
        FieldDef::new("DurationInMinutes", T::Int).label("Duration"),
        FieldDef::new("ActivityDateTime", T::Datetime).label("Due Date Time"),
        FieldDef::new("ActivityDate", T::Date).label("Due Date Only"),
        FieldDef::new("IsAllDayEvent", T::Boolean).label("All-Day Event"),
    ];
    own.extend(activity_links());
    own.push(text("Location", 255));
    own.extend(activity_derived());
    object("Event", "00U", "Events", own)
}

/// Users: read here, managed through the control surface (the integration user has no "Manage
/// Users" permission).
fn user() -> ObjectDef {
    let mut own = vec![text("Username", 80).required().unique()];
    own.extend(names());
    own.extend([
        text("Alias", 8).required(),
        FieldDef::new("Email", T::Email).required(),
        FieldDef::new("IsActive", T::Boolean).label("Active"),
        picklist("UserType", &["Standard"]),
    ]);
    let mut def = object("User", "005", "Users", own);
    for f in &mut def.fields {
        f.createable = false;
        f.updateable = false;
    }
    def.createable = false;
    def.updateable = false;
    def.deletable = false;
    def
}

const FORECAST: &[&str] = &["Omitted", "Pipeline", "BestCase", "Commit", "Closed"];

/// Opportunity stages are metadata: queryable, changed in Setup (the control surface) only.
fn opportunity_stage() -> ObjectDef {
    let names = ["Omitted", "Pipeline", "Best Case", "Commit", "Closed"];
    let own = vec![
        text("MasterLabel", 255).label("Master Label").required(),
        text("ApiName", 255).label("Api Name").required(),
        FieldDef::new("IsActive", T::Boolean).label("Active"),
        FieldDef::new("IsClosed", T::Boolean).label("Closed"),
        FieldDef::new("IsWon", T::Boolean).label("Won"),
        FieldDef::new("DefaultProbability", T::Percent).label("Probability (%)"),
        picklist("ForecastCategory", FORECAST),
        picklist("ForecastCategoryName", &names).label("Forecast Category Name"),
        FieldDef::new("SortOrder", T::Int).label("Sort Order"),
        text("Description", 255),
    ];
    let mut def = object("OpportunityStage", "01J", "Opportunity Stages", own);
    for f in &mut def.fields {
        f.createable = false;
        f.updateable = false;
    }
    def.label = "Opportunity Stage".into();
    def.createable = false;
    def.updateable = false;
    def.deletable = false;
    def
}

/// The objects that carry the exactly-once marker field by default.
pub(crate) const MARKED_OBJECTS: &[&str] =
    &["Account", "Contact", "Lead", "Opportunity", "Task", "Event"];

/// The marker field: Text(255), External ID, Unique.
pub(crate) fn marker_field(name: &str) -> FieldDef {
    text(name, 255).external_id().unique()
}

/// Every standard object; `marker` adds that field to [`MARKED_OBJECTS`].
pub(crate) fn standard_objects(marker: Option<&str>) -> Vec<ObjectDef> {
    let mut objects = vec![
        account(),
        contact(),
        lead(),
        opportunity(),
        task(),
        event(),
        user(),
        opportunity_stage(),
    ];
    if let Some(marker) = marker {
        for obj in objects
            .iter_mut()
            .filter(|o| MARKED_OBJECTS.contains(&o.name.as_str()))
        {
            obj.fields.push(marker_field(marker));
        }
    }
    objects
}

/// An out-of-the-box opportunity stage.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DefaultStage {
    pub(crate) label: &'static str,
    pub(crate) probability: f64,
    pub(crate) closed: bool,
    pub(crate) won: bool,
    /// The `ForecastCategory` API value.
    pub(crate) forecast: &'static str,
}

const fn stage(
    label: &'static str,
    probability: f64,
    closed: bool,
    won: bool,
    forecast: &'static str,
) -> DefaultStage {
    DefaultStage {
        label,
        probability,
        closed,
        won,
        forecast,
    }
}

/// The default stages, in sort order.
pub(crate) const DEFAULT_STAGES: &[DefaultStage] = &[
    stage("Prospecting", 10.0, false, false, "Pipeline"),
    stage("Qualification", 10.0, false, false, "Pipeline"),
    stage("Needs Analysis", 20.0, false, false, "Pipeline"),
    stage("Value Proposition", 50.0, false, false, "Pipeline"),
    stage("Id. Decision Makers", 60.0, false, false, "Pipeline"),
    stage("Perception Analysis", 70.0, false, false, "Pipeline"),
    stage("Proposal/Price Quote", 75.0, false, false, "Pipeline"),
    stage("Negotiation/Review", 90.0, false, false, "Commit"),
    stage("Closed Won", 100.0, true, true, "Closed"),
    stage("Closed Lost", 0.0, true, false, "Omitted"),
];

/// The label of a `ForecastCategory` API value (`BestCase` → `Best Case`).
pub(crate) fn forecast_name(category: &str) -> &'static str {
    match category {
        "Omitted" => "Omitted",
        "BestCase" => "Best Case",
        "Commit" => "Commit",
        "Closed" => "Closed",
        _ => "Pipeline",
    }
}

/// Whether `category` is a `ForecastCategory` API value.
pub(crate) fn is_forecast_category(category: &str) -> bool {
    FORECAST.contains(&category)
}

/// The fields the default Outbound Message action of each ruled object sends.
pub(crate) fn default_outbound_fields(object: &str) -> Option<&'static [&'static str]> {
    Some(match object {
        "Account" => &[
            "Id",
            "Name",
            "Website",
            "Industry",
            "Phone",
            "Type",
            "AnnualRevenue",
            "NumberOfEmployees",
            "BillingCity",
            "BillingCountry",
            "OwnerId",
            "CreatedDate",
            "LastModifiedDate",
            "LastModifiedById",
            "SystemModstamp",
        ],
        "Contact" => &[
            "Id",
            "AccountId",
            "FirstName",
            "LastName",
            "Email",
            "Title",
            "Phone",
            "MobilePhone",
            "OwnerId",
            "CreatedDate",
            "LastModifiedDate",
            "LastModifiedById",
            "SystemModstamp",
        ],
        "Lead" => &[
            "Id",
            "FirstName",
            "LastName",
            "Company",
            "Email",
            "Title",
            "Phone",
            "Status",
            "LeadSource",
            "IsConverted",
            "ConvertedAccountId",
            "ConvertedContactId",
            "ConvertedOpportunityId",
            "ConvertedDate",
            "OwnerId",
            "CreatedDate",
            "LastModifiedDate",
            "LastModifiedById",
            "SystemModstamp",
        ],
        "Opportunity" => &[
            "Id",
            "Name",
            "AccountId",
            "Amount",
            "StageName",
            "CloseDate",
            "Probability",
            "LeadSource",
            "Type",
            "NextStep",
            "IsClosed",
            "IsWon",
            "OwnerId",
            "CreatedDate",
            "LastModifiedDate",
            "LastModifiedById",
            "SystemModstamp",
        ],
        _ => return None,
    })
}
