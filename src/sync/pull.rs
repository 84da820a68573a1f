//! Pull: apply a Salesforce record locally by the match ladder and the conflict policy (being written).
