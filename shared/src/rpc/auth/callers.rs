//! The caller file: which identity has which roles, and which RPCs each role may call.
//! Everything not granted is denied.
//!
//! ```toml
//! [roles.citizen-channel]
//! rpcs = ["gongji.binding.v1.BindingService/CreateBinding", "gongji.payment.v1.AccountService/GetAccount"]
//! acting_person = "required"   # or "optional" (the default)
//!
//! [[callers]]
//! identity = "spiffe://gongji.example/ns/channels/sa/wechat-backend"
//! roles = ["citizen-channel"]
//! trusted_acting_person = false  # may assert a plain ID number as acting person
//! requests_per_second = 50
//! institutions = ["H340500001"]  # a hospital's caller: the institutions it settles for
//! ```

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;

/// Most callers and roles one file holds, and RPCs per role: a bound on what is loaded.
const MAX_CALLERS: usize = 1_000;
const MAX_ROLES: usize = 100;
/// A caller's request rate unless its entry says otherwise, and the most it may say.
pub const DEFAULT_REQUESTS_PER_SECOND: u32 = 100;
const MAX_REQUESTS_PER_SECOND: u32 = 100_000;

/// Whether a role's calls must name the person they act for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ActingPerson {
    /// The caller acts for itself; an acting person, if named, is still checked.
    #[default]
    Optional,
    /// Every call names a logged-in person (citizen channels).
    Required,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RoleEntry {
    rpcs: Vec<String>,
    #[serde(default)]
    acting_person: ActingPerson,
    /// Whether the role sees full names (registry sync, auditors); others get masked ones.
    #[serde(default)]
    sees_names: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CallerEntry {
    identity: String,
    roles: Vec<String>,
    #[serde(default)]
    trusted_acting_person: bool,
    requests_per_second: Option<u32>,
    #[serde(default)]
    institutions: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CallerFile {
    #[serde(default)]
    roles: BTreeMap<String, RoleEntry>,
    #[serde(default)]
    callers: Vec<CallerEntry>,
}

/// One role as loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Role {
    pub rpcs: BTreeSet<String>,
    pub acting_person: ActingPerson,
    pub sees_names: bool,
}

/// One known caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    pub identity: String,
    pub roles: Vec<String>,
    pub trusted_acting_person: bool,
    pub requests_per_second: u32,
    /// The designated institutions (codes) a hospital or pharmacy caller settles for; when
    /// listed, it may pay medical expenses at those only.
    pub institutions: Vec<String>,
}

/// What a caller may do with one RPC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grant {
    /// Every role that grants the RPC requires an acting person.
    pub acting_person_required: bool,
    /// Some role of the caller sees full names.
    pub sees_names: bool,
}

/// The loaded caller file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Callers {
    roles: BTreeMap<String, Role>,
    callers: BTreeMap<String, Profile>,
}

/// The caller file cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("caller file: {0}")]
pub struct CallersError(String);

impl Callers {
    /// Parses a caller file; every RPC it names must be one of `known_rpcs`
    /// (`package.Service/Method`), and every role a caller has must be defined.
    pub fn parse(text: &str, known_rpcs: &BTreeSet<String>) -> Result<Self, CallersError> {
        let file: CallerFile = toml::from_str(text).map_err(|e| CallersError(e.to_string()))?;
        if file.roles.len() > MAX_ROLES || file.callers.len() > MAX_CALLERS {
            return Err(CallersError(format!(
                "at most {MAX_ROLES} roles and {MAX_CALLERS} callers"
            )));
        }
        let mut roles = BTreeMap::new();
        for (name, entry) in file.roles {
            if let Some(unknown) = entry.rpcs.iter().find(|r| !known_rpcs.contains(*r)) {
                return Err(CallersError(format!(
                    "role {name} names {unknown}, which is no RPC of this contract"
                )));
            }
            roles.insert(
                name,
                Role {
                    rpcs: entry.rpcs.into_iter().collect(),
                    acting_person: entry.acting_person,
                    sees_names: entry.sees_names,
                },
            );
        }
        let mut callers = BTreeMap::new();
        for entry in file.callers {
            if entry.identity.is_empty() {
                return Err(CallersError("a caller without identity".to_owned()));
            }
            if let Some(unknown) = entry.roles.iter().find(|r| !roles.contains_key(*r)) {
                return Err(CallersError(format!(
                    "caller {} has role {unknown}, which the file does not define",
                    entry.identity
                )));
            }
            let rate = entry
                .requests_per_second
                .unwrap_or(DEFAULT_REQUESTS_PER_SECOND);
            if rate == 0 || rate > MAX_REQUESTS_PER_SECOND {
                return Err(CallersError(format!(
                    "caller {}: requests_per_second is 1 to {MAX_REQUESTS_PER_SECOND}",
                    entry.identity
                )));
            }
            let profile = Profile {
                identity: entry.identity.clone(),
                roles: entry.roles,
                trusted_acting_person: entry.trusted_acting_person,
                requests_per_second: rate,
                institutions: entry.institutions,
            };
            if callers.insert(entry.identity.clone(), profile).is_some() {
                return Err(CallersError(format!(
                    "caller {} is listed twice",
                    entry.identity
                )));
            }
        }
        Ok(Self { roles, callers })
    }

    /// The caller known by `identity`.
    pub fn profile(&self, identity: &str) -> Option<&Profile> {
        self.callers.get(identity)
    }

    /// What `profile`'s roles allow on `rpc`; `None` when none grants it.
    pub fn grant(&self, profile: &Profile, rpc: &str) -> Option<Grant> {
        let roles: Vec<&Role> = profile
            .roles
            .iter()
            .filter_map(|name| self.roles.get(name))
            .collect();
        let granting: Vec<&&Role> = roles.iter().filter(|r| r.rpcs.contains(rpc)).collect();
        if granting.is_empty() {
            return None;
        }
        Some(Grant {
            acting_person_required: granting
                .iter()
                .all(|r| r.acting_person == ActingPerson::Required),
            sees_names: roles.iter().any(|r| r.sees_names),
        })
    }

    /// The RPCs a role grants (empty for an unknown role).
    pub fn role_rpcs(&self, role: &str) -> BTreeSet<String> {
        self.roles
            .get(role)
            .map(|r| r.rpcs.clone())
            .unwrap_or_default()
    }
}

/// Every RPC of the contract, as `package.Service/Method`.
pub fn contract_rpcs() -> BTreeSet<String> {
    use prost::Message as _;
    let Ok(set) = prost_types::FileDescriptorSet::decode(gongji_proto::FILE_DESCRIPTOR_SET) else {
        return BTreeSet::new();
    };
    let mut rpcs = BTreeSet::new();
    for file in set.file {
        let package = file.package().to_owned();
        if !package.starts_with("gongji.") {
            continue;
        }
        for service in &file.service {
            for method in &service.method {
                rpcs.insert(format!("{package}.{}/{}", service.name(), method.name()));
            }
        }
    }
    rpcs
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"
[roles.citizen]
rpcs = ["gongji.payment.v1.AccountService/GetAccount"]
acting_person = "required"

[roles.auditor]
rpcs = ["gongji.payment.v1.AccountService/GetAccount", "gongji.payment.v1.SettlementService/VerifyLedger"]
sees_names = true

[[callers]]
identity = "wechat"
roles = ["citizen"]

[[callers]]
identity = "audit"
roles = ["auditor"]
requests_per_second = 5
"#;

    /// The 25 RPCs of the trust issue's count, the fence's AuthorizeUse, ListBindingUses
    /// and ReconcileBindingUses, CloseYear, and the family features (ListFamilyUsage,
    /// WatchAccountEvents, GetAccountStatement, ListUnpaidPremiums, SetBindingLimits), and
    /// the corrections' ListMedicalExpensePayments, RefundMedicalExpensePayment and
    /// BatchUpsertDesignatedInstitutions, and two-party consent's AcceptBinding and
    /// DeclineBinding, and the family wallet's TransferToFamilyWallet, GetWalletTransfer,
    /// ConfirmWalletTransfer, ReturnWalletTransfer, SettleWalletMonth and GetWalletStatement,
    /// and the operator's CloseYearForAllAccounts and both services' ResealPersonalData.
    #[test]
    fn the_contract_counts_every_rpc() {
        assert_eq!(contract_rpcs().len(), 48, "{:?}", contract_rpcs());
    }

    #[test]
    fn a_role_grants_exactly_its_rpcs() {
        let callers = Callers::parse(FILE, &contract_rpcs()).unwrap();
        let wechat = callers.profile("wechat").unwrap();
        let grant = callers
            .grant(wechat, "gongji.payment.v1.AccountService/GetAccount")
            .unwrap();
        assert!(grant.acting_person_required && !grant.sees_names);
        assert_eq!(
            callers.grant(wechat, "gongji.payment.v1.SettlementService/VerifyLedger"),
            None
        );
        let audit = callers.profile("audit").unwrap();
        assert_eq!(audit.requests_per_second, 5);
        assert_eq!(wechat.requests_per_second, DEFAULT_REQUESTS_PER_SECOND);
        let grant = callers
            .grant(audit, "gongji.payment.v1.AccountService/GetAccount")
            .unwrap();
        assert!(!grant.acting_person_required && grant.sees_names);
        assert!(callers.profile("stranger").is_none());
    }

    #[test]
    fn an_unknown_rpc_or_role_or_a_duplicate_is_refused() {
        let rpcs = contract_rpcs();
        let typo = "[roles.r]\nrpcs = [\"gongji.payment.v1.AccountService/GetAcount\"]\n";
        assert!(Callers::parse(typo, &rpcs).is_err());
        let undefined = "[[callers]]\nidentity = \"a\"\nroles = [\"nobody\"]\n";
        assert!(Callers::parse(undefined, &rpcs).is_err());
        let twice = "[roles.r]\nrpcs = []\n[[callers]]\nidentity = \"a\"\nroles = [\"r\"]\n[[callers]]\nidentity = \"a\"\nroles = [\"r\"]\n";
        assert!(Callers::parse(twice, &rpcs).is_err());
        let zero = "[roles.r]\nrpcs = []\n[[callers]]\nidentity = \"a\"\nroles = [\"r\"]\nrequests_per_second = 0\n";
        assert!(Callers::parse(zero, &rpcs).is_err());
    }
}
