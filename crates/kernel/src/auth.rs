//! Who is calling: the principal the gateway authenticated, and the roles it holds.

use std::fmt;
use std::str::FromStr;

use uuid::Uuid;

use crate::error::{KERNEL_DOMAIN, ServiceError};

/// A role named in a token's `roles` claim.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    Admin,
    Factory,
    Advertiser,
    Promoter,
    Customer,
    Generator,
    Billing,
    Ops,
    /// Operates the platform itself: creates workspaces, sets their modules.
    PlatformAdmin,
    /// A shop's backend: pricing, redemption, displays, clicks.
    Storefront,
}

impl Role {
    pub const ALL: [Role; 10] = [
        Role::Admin,
        Role::Factory,
        Role::Advertiser,
        Role::Promoter,
        Role::Customer,
        Role::Generator,
        Role::Billing,
        Role::Ops,
        Role::PlatformAdmin,
        Role::Storefront,
    ];

    /// Service principals (the generator, billing, a shop's backend) call at machine rates; human
    /// roles keep abuse limits.
    pub fn is_service(self) -> bool {
        matches!(self, Role::Generator | Role::Billing | Role::Storefront)
    }

    /// `"a, b, c"`: role names for messages that tell a caller what would be accepted.
    pub fn names(roles: &[Role]) -> String {
        roles
            .iter()
            .map(|role| role.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Factory => "factory",
            Role::Advertiser => "advertiser",
            Role::Promoter => "promoter",
            Role::Customer => "customer",
            Role::Generator => "generator",
            Role::Billing => "billing",
            Role::Ops => "ops",
            Role::PlatformAdmin => "platform-admin",
            Role::Storefront => "storefront",
        }
    }
}

impl FromStr for Role {
    type Err = String;

    fn from_str(value: &str) -> Result<Role, String> {
        Role::ALL
            .into_iter()
            .find(|role| role.as_str() == value)
            .ok_or_else(|| {
                format!(
                    "unknown role {}; the roles are {}",
                    crate::ids::echo(value),
                    Role::names(&Role::ALL)
                )
            })
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An authenticated caller, put into request extensions by the gateway.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    /// The `sub` claim: the user, factory, service or operator acting.
    pub subject: Uuid,
    /// The `workspace` claim: the only tenant whose data this caller may touch (unless platform-admin).
    pub workspace_id: Uuid,
    pub roles: Vec<Role>,
}

impl Principal {
    pub fn has_role(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }

    pub fn has_any_role(&self, roles: &[Role]) -> bool {
        roles.iter().any(|role| self.has_role(*role))
    }

    /// The principal the gateway attached to this request.
    pub fn of<T>(request: &tonic::Request<T>) -> Result<&Principal, ServiceError> {
        request.extensions().get::<Principal>().ok_or_else(|| {
            ServiceError::unauthenticated("UNAUTHENTICATED", "missing or invalid bearer token")
        })
    }

    /// The customer a shop call acts for: operators and a shop's backend (admin, ops, storefront)
    /// name any customer in `field` (or none); a customer token acts for its own `sub`, whether
    /// `field` is empty or names it, and is refused (CUSTOMER_MISMATCH) for anyone else.
    pub fn acting_customer(
        &self,
        domain: &str,
        field: &str,
        requested: &str,
    ) -> Result<Option<Uuid>, ServiceError> {
        let requested = crate::ids::parse_optional_uuid(domain, field, requested)?;
        if self.has_any_role(&[Role::Admin, Role::Ops, Role::Storefront]) {
            return Ok(requested);
        }
        match requested {
            None => Ok(Some(self.subject)),
            Some(id) if id == self.subject => Ok(Some(id)),
            Some(_) => Err(ServiceError::permission_denied(
                domain,
                "CUSTOMER_MISMATCH",
                format!("a customer token acts for its own customer only ({field})"),
            )),
        }
    }

    /// Resolves the workspace a request names: empty means the caller's own; another workspace is
    /// allowed only for platform-admin, and otherwise looks exactly like a missing one.
    pub fn target_workspace(
        &self,
        domain: &str,
        field: &str,
        requested: &str,
    ) -> Result<Uuid, ServiceError> {
        let Some(workspace_id) = crate::ids::parse_optional_uuid(domain, field, requested)? else {
            return Ok(self.workspace_id);
        };
        if workspace_id == self.workspace_id || self.has_role(Role::PlatformAdmin) {
            Ok(workspace_id)
        } else {
            Err(ServiceError::not_found(
                KERNEL_DOMAIN,
                "WORKSPACE_NOT_FOUND",
                "workspace",
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_round_trip_through_their_names() {
        for role in Role::ALL {
            assert_eq!(role.as_str().parse::<Role>(), Ok(role));
        }
        let error = "root".parse::<Role>().expect_err("unknown");
        assert!(error.contains("admin, factory"), "{error}");
        assert!(error.contains("storefront"), "{error}");
    }

    #[test]
    fn a_foreign_workspace_looks_missing_unless_platform_admin() {
        let own = Uuid::new_v4();
        let other = Uuid::new_v4();
        let mut principal = Principal {
            subject: Uuid::new_v4(),
            workspace_id: own,
            roles: vec![Role::Admin],
        };
        assert_eq!(
            principal.target_workspace("d", "workspace_id", "").ok(),
            Some(own)
        );
        let error = principal
            .target_workspace("d", "workspace_id", &other.to_string())
            .expect_err("foreign");
        assert_eq!(error.reason(), "WORKSPACE_NOT_FOUND");
        principal.roles.push(Role::PlatformAdmin);
        assert_eq!(
            principal
                .target_workspace("d", "workspace_id", &other.to_string())
                .ok(),
            Some(other)
        );
    }
}
