//! What the simulated org knows about its objects: key prefixes, fields, which fields are
//! required or read-only, field value kinds and the default opportunity stages
//! (salesforce-protocol.md 2.6 and 4).

/// The system fields every object carries.
const SYSTEM_FIELDS: &[&str] = &[
    "Id",
    "IsDeleted",
    "CreatedDate",
    "CreatedById",
    "LastModifiedDate",
    "LastModifiedById",
    "SystemModstamp",
    "OwnerId",
];

/// System fields no caller may write.
const SYSTEM_READ_ONLY: &[&str] = &[
    "Id",
    "IsDeleted",
    "CreatedDate",
    "CreatedById",
    "LastModifiedDate",
    "LastModifiedById",
    "SystemModstamp",
];

/// One standard object of the simulated org.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct ObjectInfo {
    /// The API name (`Account`).
    pub(crate) name: &'static str,
    /// The three-character key prefix (`001`).
    pub(crate) prefix: &'static str,
    /// The object's own fields (system fields come on top).
    pub(crate) fields: &'static [&'static str],
    /// Fields a create must carry (after defaults are applied).
    pub(crate) required: &'static [&'static str],
    /// Fields the org computes.
    pub(crate) read_only: &'static [&'static str],
}

const ACCOUNT: ObjectInfo = ObjectInfo {
    name: "Account",
    prefix: "001",
    fields: &[
        "Name",
        "AccountNumber",
        "Site",
        "Website",
        "Industry",
        "AnnualRevenue",
        "NumberOfEmployees",
        "Phone",
        "Fax",
        "Type",
        "Description",
        "Rating",
        "BillingStreet",
        "BillingCity",
        "BillingState",
        "BillingPostalCode",
        "BillingCountry",
        "ShippingStreet",
        "ShippingCity",
        "ShippingState",
        "ShippingPostalCode",
        "ShippingCountry",
        "ParentId",
        "MasterRecordId",
    ],
    required: &["Name"],
    read_only: &["MasterRecordId"],
};

const CONTACT: ObjectInfo = ObjectInfo {
    name: "Contact",
    prefix: "003",
    fields: &[
        "FirstName",
        "LastName",
        "Name",
        "Salutation",
        "Email",
        "Title",
        "Phone",
        "MobilePhone",
        "AccountId",
        "Department",
        "Description",
        "LeadSource",
        "Birthdate",
        "MailingStreet",
        "MailingCity",
        "MailingState",
        "MailingPostalCode",
        "MailingCountry",
        "MasterRecordId",
    ],
    required: &["LastName"],
    read_only: &["Name", "MasterRecordId"],
};

const LEAD: ObjectInfo = ObjectInfo {
    name: "Lead",
    prefix: "00Q",
    fields: &[
        "FirstName",
        "LastName",
        "Name",
        "Salutation",
        "Company",
        "Status",
        "Email",
        "Title",
        "Phone",
        "MobilePhone",
        "LeadSource",
        "Industry",
        "Website",
        "Description",
        "Rating",
        "Street",
        "City",
        "State",
        "PostalCode",
        "Country",
        "AnnualRevenue",
        "NumberOfEmployees",
        "IsConverted",
        "ConvertedDate",
        "ConvertedAccountId",
        "ConvertedContactId",
        "ConvertedOpportunityId",
        "MasterRecordId",
    ],
    required: &["LastName", "Company"],
    read_only: &[
        "Name",
        "IsConverted",
        "ConvertedDate",
        "ConvertedAccountId",
        "ConvertedContactId",
        "ConvertedOpportunityId",
        "MasterRecordId",
    ],
};

const OPPORTUNITY: ObjectInfo = ObjectInfo {
    name: "Opportunity",
    prefix: "006",
    fields: &[
        "Name",
        "StageName",
        "CloseDate",
        "Amount",
        "AccountId",
        "Probability",
        "IsClosed",
        "IsWon",
        "ForecastCategoryName",
        "LeadSource",
        "Type",
        "NextStep",
        "ContactId",
        "Description",
    ],
    required: &["Name", "StageName", "CloseDate"],
    read_only: &["IsClosed", "IsWon"],
};

const TASK: ObjectInfo = ObjectInfo {
    name: "Task",
    prefix: "00T",
    fields: &[
        "Subject",
        "Status",
        "Priority",
        "ActivityDate",
        "WhoId",
        "WhatId",
        "Description",
        "Type",
        "TaskSubtype",
        "IsClosed",
        "CompletedDateTime",
        "AccountId",
        "IsArchived",
    ],
    required: &["Status", "Priority"],
    read_only: &["IsClosed", "CompletedDateTime", "AccountId", "IsArchived"],
};

const EVENT: ObjectInfo = ObjectInfo {
    name: "Event",
    prefix: "00U",
    fields: &[
        "Subject",
        "StartDateTime",
        "EndDateTime",
        "DurationInMinutes",
        "ActivityDateTime",
        "ActivityDate",
        "IsAllDayEvent",
        "WhoId",
        "WhatId",
        "Description",
        "Location",
        "Type",
        "AccountId",
        "IsArchived",
    ],
    required: &[],
    read_only: &["AccountId", "IsArchived"],
};

/// Every object the org holds.
pub(crate) const OBJECTS: &[ObjectInfo] = &[ACCOUNT, CONTACT, LEAD, OPPORTUNITY, TASK, EVENT];

/// The object named `name` (case-insensitive, as Salesforce resolves names).
pub(crate) fn object(name: &str) -> Option<&'static ObjectInfo> {
    OBJECTS.iter().find(|o| o.name.eq_ignore_ascii_case(name))
}

/// The object an id's key prefix names.
pub(crate) fn object_by_prefix(prefix: &str) -> Option<&'static ObjectInfo> {
    OBJECTS.iter().find(|o| o.prefix == prefix)
}

impl ObjectInfo {
    /// The canonical spelling of a field of this object, or `None` when it has no such field.
    /// Custom fields (`…__c`) exist on every object.
    pub(crate) fn field(&self, name: &str) -> Option<String> {
        if let Some(f) = SYSTEM_FIELDS
            .iter()
            .chain(self.fields)
            .find(|f| f.eq_ignore_ascii_case(name))
        {
            return Some((*f).to_string());
        }
        let is_custom = name.len() > 3
            && name[name.len() - 3..].eq_ignore_ascii_case("__c")
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        is_custom.then(|| format!("{}__c", &name[..name.len() - 3]))
    }

    /// Whether callers may not write `field` (canonical spelling).
    pub(crate) fn is_read_only(&self, field: &str) -> bool {
        SYSTEM_READ_ONLY.contains(&field) || self.read_only.contains(&field)
    }

    /// Every standard field, system fields first, in a stable order.
    pub(crate) fn all_fields(&self) -> impl Iterator<Item = &'static str> {
        SYSTEM_FIELDS.iter().chain(self.fields).copied()
    }
}

/// How a field's value is typed on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Free text, picklists and ids.
    Text,
    /// `true`/`false`.
    Boolean,
    /// An integer (`NumberOfEmployees`).
    Integer,
    /// A double, currency or percent (`Amount`).
    Double,
    /// `YYYY-MM-DD`.
    Date,
    /// `2013-05-20T20:49:32.000+0000` in REST.
    DateTime,
}

/// The kind of a (canonical) field name.
pub(crate) fn kind(field: &str) -> Kind {
    match field {
        "IsDeleted" | "IsConverted" | "IsClosed" | "IsWon" | "IsAllDayEvent" | "IsArchived" => {
            Kind::Boolean
        }
        "NumberOfEmployees" | "DurationInMinutes" => Kind::Integer,
        "AnnualRevenue" | "Amount" | "Probability" => Kind::Double,
        "CloseDate" | "ActivityDate" | "ConvertedDate" | "Birthdate" => Kind::Date,
        "CreatedDate" | "LastModifiedDate" | "SystemModstamp" | "StartDateTime" | "EndDateTime"
        | "ActivityDateTime" | "CompletedDateTime" => Kind::DateTime,
        _ => Kind::Text,
    }
}

/// An out-of-the-box opportunity stage: probability, closed, won, forecast category.
pub(crate) fn stage(name: &str) -> (f64, bool, bool, &'static str) {
    match name {
        "Prospecting" | "Qualification" => (10.0, false, false, "Pipeline"),
        "Needs Analysis" => (20.0, false, false, "Pipeline"),
        "Value Proposition" => (50.0, false, false, "Pipeline"),
        "Id. Decision Makers" => (60.0, false, false, "Pipeline"),
        "Perception Analysis" => (70.0, false, false, "Pipeline"),
        "Proposal/Price Quote" => (75.0, false, false, "Pipeline"),
        "Negotiation/Review" => (90.0, false, false, "Commit"),
        "Closed Won" => (100.0, true, true, "Closed"),
        "Closed Lost" => (0.0, true, false, "Omitted"),
        _ => (10.0, false, false, "Pipeline"),
    }
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
            "SystemModstamp",
        ],
        _ => return None,
    })
}
