//! The input tables of CONTRACT.md, written down once: every loader, validator
//! and writer reads the column lists from here.

/// What a column holds, and so how a cell of it is parsed and checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    /// Free text (opaque ids, product names).
    Text,
    /// A decimal amount with at most 4 fractional digits, held as `Decimal(18, 4)`.
    Money,
    /// A calendar date, `YYYY-MM-DD`.
    Date,
    /// An RFC 3339 instant with an offset, held in UTC.
    Instant,
    /// A whole number.
    Integer,
    /// true/false (also 1/0).
    Bool,
    /// One of a fixed list of values.
    Enum(&'static [&'static str]),
    /// An ISO 4217 currency code.
    Currency,
    /// An IANA time-zone name.
    TimeZone,
    /// A probability above 0 and at most 1.
    Probability,
}

impl ColumnType {
    /// How the type is described to a user whose cell did not parse.
    pub fn expected(&self) -> String {
        match self {
            ColumnType::Text => "text".into(),
            ColumnType::Money => {
                "a decimal amount with at most 4 fractional digits, like 1234.50".into()
            }
            ColumnType::Date => "a date as YYYY-MM-DD".into(),
            ColumnType::Instant => {
                "an RFC 3339 instant with an offset, like 2026-09-30T14:05:00-04:00".into()
            }
            ColumnType::Integer => "a whole number".into(),
            ColumnType::Bool => "true or false".into(),
            ColumnType::Enum(values) => format!("one of {}", values.join(", ")),
            ColumnType::Currency => "an ISO 4217 currency code, like USD".into(),
            ColumnType::TimeZone => "an IANA time-zone name, like America/New_York".into(),
            ColumnType::Probability => "a probability above 0 and at most 1, like 0.25".into(),
        }
    }
}

/// One column of a contract table.
#[derive(Debug, Clone, Copy)]
pub struct ColumnSpec {
    pub name: &'static str,
    pub ty: ColumnType,
    /// A required column must be present and have a value in every row.
    pub required: bool,
    /// Money or integer that must not be negative.
    pub non_negative: bool,
}

const fn col(name: &'static str, ty: ColumnType, required: bool, non_negative: bool) -> ColumnSpec {
    ColumnSpec {
        name,
        ty,
        required,
        non_negative,
    }
}

/// One input table of the contract.
#[derive(Debug, Clone, Copy)]
pub struct TableSpec {
    pub name: &'static str,
    pub columns: &'static [ColumnSpec],
    /// Columns whose values together identify a row (empty: no key).
    pub key: &'static [&'static str],
    /// A data folder without this table is refused; an optional table is read as empty.
    pub required: bool,
}

impl TableSpec {
    /// The spec of a column by name.
    pub fn column(&self, name: &str) -> Option<&ColumnSpec> {
        self.columns.iter().find(|c| c.name == name)
    }
}

/// Strategies of the contract, in its order.
pub const STRATEGIES: &[&str] = &[
    "none",
    "sms_reminder",
    "email_reminder",
    "call",
    "settlement_offer",
    "installment_plan",
    "demand_letter",
    "field_visit",
    "legal",
    "agency",
];

/// Contact channels of the `actions` table.
pub const CHANNELS: &[&str] = super::vocab::Channel::NAMES;

/// Outcomes of a contact in the `actions` table.
pub const ACTION_OUTCOMES: &[&str] = super::vocab::Outcome::NAMES;

use ColumnType::*;

pub const ACCOUNTS: TableSpec = TableSpec {
    name: "accounts",
    columns: &[
        col("account_id", Text, true, false),
        col("customer_id", Text, false, false),
        col("product", Text, true, false),
        col("currency", Currency, true, false),
        col("opened_on", Date, true, false),
        col("credit_limit", Money, false, true),
        col("balance", Money, true, true),
        col("amount_past_due", Money, true, true),
        col("days_past_due", Integer, true, true),
        col("timezone", TimeZone, true, false),
        col("dispute_open", Bool, false, false),
        col("cease_contact", Bool, false, false),
        col("bankruptcy", Bool, false, false),
        col("deceased", Bool, false, false),
        col("do_not_call", Bool, false, false),
        col("do_not_sms", Bool, false, false),
        col("do_not_email", Bool, false, false),
    ],
    key: &["account_id"],
    required: true,
};

pub const PAYMENT_HISTORY: TableSpec = TableSpec {
    name: "payment_history",
    columns: &[
        col("account_id", Text, true, false),
        col("cycle_end", Date, true, false),
        col("amount_due", Money, true, true),
        col("amount_paid", Money, true, true),
        // A statement balance may be negative: a credit balance after an overpayment.
        col("balance", Money, true, false),
        col("days_past_due", Integer, true, true),
    ],
    key: &["account_id", "cycle_end"],
    required: true,
};

pub const ACTIONS: TableSpec = TableSpec {
    name: "actions",
    columns: &[
        col("account_id", Text, true, false),
        col("at", Instant, true, false),
        col("channel", Enum(CHANNELS), true, false),
        col("outcome", Enum(ACTION_OUTCOMES), true, false),
        col("promised_amount", Money, false, true),
        col("promised_on", Date, false, false),
    ],
    key: &[],
    required: false,
};

pub const OUTCOMES: TableSpec = TableSpec {
    name: "outcomes",
    columns: &[
        col("account_id", Text, true, false),
        col("as_of", Date, true, false),
        col("strategy", Enum(STRATEGIES), false, false),
        col("paid", Bool, true, false),
        col("paid_amount", Money, false, true),
        // Not in the contract's table: the probability with which `strategy`
        // was chosen (the plan's `propensity`), which off-policy evaluation needs.
        col("propensity", Probability, false, false),
        // Not in the contract's table either: the model that made the decision
        // (`prioritize outcomes` writes it).
        col("model_version", Text, false, false),
    ],
    key: &["account_id", "as_of"],
    required: false,
};

/// All input tables, in load order (accounts first: the others refer to it).
pub const TABLES: &[TableSpec] = &[ACCOUNTS, PAYMENT_HISTORY, ACTIONS, OUTCOMES];

/// Column names that look like direct identifiers or protected attributes.
/// They are never read, and the warning says why.
pub const SENSITIVE_COLUMNS: &[&str] = &[
    "name",
    "first_name",
    "last_name",
    "full_name",
    "phone",
    "phone_number",
    "mobile",
    "email",
    "email_address",
    "address",
    "street",
    "zip",
    "postcode",
    "ssn",
    "national_id",
    "sex",
    "gender",
    "marital_status",
    "marriage",
    "age",
    "date_of_birth",
    "birth_date",
    "race",
    "ethnicity",
    "religion",
    "national_origin",
    "nationality",
];

/// Money columns are held with this many fractional digits.
pub const MONEY_SCALE: usize = 4;
/// Precision of money columns: 14 integer digits is ample for one account.
pub const MONEY_PRECISION: usize = 18;
