//! The one declarative table of which roles each RPC admits and which module it belongs to.
//!
//! A method missing from this table is refused (deny by default), and a test walks every method
//! of every registered service to prove the table covers them all.

use kernel::Role::*;
use kernel::{Module, Role};

/// Who may call one RPC.
#[derive(Clone, Copy, Debug)]
pub struct MethodRule {
    /// The gRPC path, `/package.Service/Method`.
    pub path: &'static str,
    pub roles: &'static [Role],
    /// The module that must be enabled in the caller's workspace; `None` for platform services.
    pub module: Option<Module>,
}

const fn rule(path: &'static str, roles: &'static [Role], module: Option<Module>) -> MethodRule {
    MethodRule {
        path,
        roles,
        module,
    }
}

/// Paths every caller may use without a token.
pub const OPEN_PREFIXES: &[&str] = &[
    "/grpc.health.v1.Health/",
    "/grpc.reflection.v1.ServerReflection/",
    "/grpc.reflection.v1alpha.ServerReflection/",
];

const ANY_WORKSPACE_ROLE: &[Role] = &[
    Admin,
    Factory,
    Advertiser,
    Promoter,
    Customer,
    Generator,
    Billing,
    Ops,
    PlatformAdmin,
    Storefront,
];
const LEDGER_READERS: &[Role] = &[Admin, Ops, Billing, Factory, Advertiser, Promoter, Customer];
const LEDGER: Option<Module> = Some(Module::Ledger);
const CATALOGUE: &[Role] = &[Factory, Admin, Ops];
const CATALOGUE_READERS: &[Role] = &[Factory, Admin, Ops, Generator];
const TAXONOMY_EDITORS: &[Role] = &[Admin, Ops];
const PROMOTION: Option<Module> = Some(Module::MaterialPromotion);

pub const RULES: &[MethodRule] = &[
    rule(
        "/promo.admin.v1.WorkspaceService/CreateWorkspace",
        &[PlatformAdmin],
        None,
    ),
    rule(
        "/promo.admin.v1.WorkspaceService/GetWorkspace",
        ANY_WORKSPACE_ROLE,
        None,
    ),
    rule(
        "/promo.admin.v1.WorkspaceService/ListWorkspaces",
        &[PlatformAdmin],
        None,
    ),
    rule(
        "/promo.admin.v1.WorkspaceService/SetModules",
        &[PlatformAdmin],
        None,
    ),
    rule(
        "/promo.admin.v1.WorkspaceService/GetSettings",
        &[Admin, Ops, PlatformAdmin],
        None,
    ),
    rule(
        "/promo.admin.v1.WorkspaceService/UpdateSettings",
        &[Admin, PlatformAdmin],
        None,
    ),
    rule(
        "/promo.ledger.v1.LedgerService/CreateAccounts",
        &[Admin],
        LEDGER,
    ),
    rule(
        "/promo.ledger.v1.LedgerService/CreateTransfers",
        &[Admin],
        LEDGER,
    ),
    rule(
        "/promo.ledger.v1.LedgerService/GetAccount",
        LEDGER_READERS,
        LEDGER,
    ),
    rule(
        "/promo.ledger.v1.LedgerService/ListAccounts",
        LEDGER_READERS,
        LEDGER,
    ),
    rule(
        "/promo.ledger.v1.LedgerService/GetAccountBalance",
        LEDGER_READERS,
        LEDGER,
    ),
    rule(
        "/promo.ledger.v1.LedgerService/ListTransfers",
        LEDGER_READERS,
        LEDGER,
    ),
    rule(
        "/promo.ledger.v1.LedgerService/PurchaseCredits",
        &[Billing, Admin],
        LEDGER,
    ),
    rule(
        "/promo.promotion.v1.MaterialService/CreateMaterial",
        CATALOGUE,
        PROMOTION,
    ),
    rule(
        "/promo.promotion.v1.MaterialService/ImportMaterials",
        CATALOGUE,
        PROMOTION,
    ),
    rule(
        "/promo.promotion.v1.MaterialService/GetMaterial",
        CATALOGUE_READERS,
        PROMOTION,
    ),
    rule(
        "/promo.promotion.v1.MaterialService/ListMaterials",
        CATALOGUE_READERS,
        PROMOTION,
    ),
    rule(
        "/promo.promotion.v1.MaterialService/ListMaterialTypes",
        CATALOGUE_READERS,
        PROMOTION,
    ),
    rule(
        "/promo.promotion.v1.MaterialService/CreateMaterialType",
        TAXONOMY_EDITORS,
        PROMOTION,
    ),
    rule(
        "/promo.promotion.v1.MaterialService/UpdateMaterialType",
        TAXONOMY_EDITORS,
        PROMOTION,
    ),
    rule(
        "/promo.promotion.v1.PromotionService/CreatePromotion",
        CATALOGUE,
        PROMOTION,
    ),
    rule(
        "/promo.promotion.v1.PromotionService/AllocateCredits",
        CATALOGUE,
        PROMOTION,
    ),
    rule(
        "/promo.promotion.v1.PromotionService/GetPromotion",
        CATALOGUE,
        PROMOTION,
    ),
    rule(
        "/promo.promotion.v1.PromotionService/ListPromotions",
        CATALOGUE,
        PROMOTION,
    ),
    rule(
        "/promo.promotion.v1.PromotionService/UpdatePromotionStatus",
        CATALOGUE,
        PROMOTION,
    ),
    rule(
        "/promo.promotion.v1.PromotionService/GetPromotionAnalytics",
        CATALOGUE,
        PROMOTION,
    ),
    rule(
        "/promo.promotion.v1.PromotionService/GetFactoryAnalytics",
        CATALOGUE,
        PROMOTION,
    ),
    rule(
        "/promo.promotion.v1.PromotionService/ListFactoryMaterials",
        CATALOGUE,
        PROMOTION,
    ),
    rule(
        "/promo.promotion.v1.PromotionService/ListPromotionAudit",
        CATALOGUE,
        PROMOTION,
    ),
    rule(
        "/promo.promotion.v1.SelectionService/SelectMaterials",
        &[Generator],
        PROMOTION,
    ),
    rule(
        "/promo.promotion.v1.SelectionService/ReportUsage",
        &[Generator],
        PROMOTION,
    ),
];

/// What the gateway does with a request path.
#[derive(Clone, Copy, Debug)]
pub enum Access {
    Open,
    Protected(&'static MethodRule),
    /// Not in the table: refused.
    Unknown,
}

pub fn lookup(path: &str) -> Access {
    if OPEN_PREFIXES.iter().any(|prefix| path.starts_with(prefix)) {
        return Access::Open;
    }
    RULES
        .iter()
        .find(|rule| rule.path == path)
        .map_or(Access::Unknown, Access::Protected)
}
