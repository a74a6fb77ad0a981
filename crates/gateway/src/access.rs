//! The declarative table of which roles each RPC admits and which module it belongs to (one part
//! per file: this one and `access_payouts`).
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

pub(crate) const fn rule(
    path: &'static str,
    roles: &'static [Role],
    module: Option<Module>,
) -> MethodRule {
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
const MARKETING: Option<Module> = Some(Module::Marketing);
const SHOP_OPERATORS: &[Role] = &[Admin, Ops];
const SHOP_BACKEND: &[Role] = &[Storefront, Admin, Ops];
const SHOP_CUSTOMERS: &[Role] = &[Admin, Ops, Customer];
const SHOP_ANYONE: &[Role] = &[Admin, Ops, Storefront, Customer];
const GROWTH: Option<Module> = Some(Module::Growth);
/// An affiliate reads its own records with its customer token; operators read any.
const AFFILIATE_READERS: &[Role] = &[Admin, Ops, Customer];
/// Any service may add to a metric (RecordActivity).
const ACTIVITY_REPORTERS: &[Role] = &[Admin, Ops, Storefront, Generator, Billing];

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
    rule(
        "/promo.marketing.v1.CampaignService/CreateCampaign",
        SHOP_OPERATORS,
        MARKETING,
    ),
    rule(
        "/promo.marketing.v1.CampaignService/UpdateCampaign",
        SHOP_OPERATORS,
        MARKETING,
    ),
    rule(
        "/promo.marketing.v1.CampaignService/GetCampaign",
        SHOP_OPERATORS,
        MARKETING,
    ),
    rule(
        "/promo.marketing.v1.CampaignService/ListCampaigns",
        SHOP_OPERATORS,
        MARKETING,
    ),
    rule(
        "/promo.marketing.v1.CampaignService/LaunchCampaign",
        SHOP_OPERATORS,
        MARKETING,
    ),
    rule(
        "/promo.marketing.v1.CampaignService/PauseCampaign",
        SHOP_OPERATORS,
        MARKETING,
    ),
    rule(
        "/promo.marketing.v1.CampaignService/ResumeCampaign",
        SHOP_OPERATORS,
        MARKETING,
    ),
    rule(
        "/promo.marketing.v1.CampaignService/CompleteCampaign",
        SHOP_OPERATORS,
        MARKETING,
    ),
    rule(
        "/promo.marketing.v1.CampaignService/CreateCampaignGroup",
        SHOP_OPERATORS,
        MARKETING,
    ),
    rule(
        "/promo.marketing.v1.CampaignService/ListCampaignGroups",
        SHOP_OPERATORS,
        MARKETING,
    ),
    rule(
        "/promo.marketing.v1.CampaignService/GetCampaignAnalytics",
        SHOP_OPERATORS,
        MARKETING,
    ),
    rule(
        "/promo.marketing.v1.CampaignService/ExportCampaignAnalytics",
        SHOP_OPERATORS,
        MARKETING,
    ),
    rule(
        "/promo.marketing.v1.CampaignService/ReportImpressions",
        SHOP_BACKEND,
        MARKETING,
    ),
    rule(
        "/promo.marketing.v1.DiscountRuleService/CreateDiscountRule",
        SHOP_OPERATORS,
        MARKETING,
    ),
    rule(
        "/promo.marketing.v1.DiscountRuleService/GetDiscountRule",
        SHOP_OPERATORS,
        MARKETING,
    ),
    rule(
        "/promo.marketing.v1.DiscountRuleService/ListDiscountRules",
        SHOP_OPERATORS,
        MARKETING,
    ),
    rule(
        "/promo.marketing.v1.CouponService/CreateCoupon",
        SHOP_OPERATORS,
        MARKETING,
    ),
    rule(
        "/promo.marketing.v1.CouponService/GenerateCoupons",
        SHOP_OPERATORS,
        MARKETING,
    ),
    rule(
        "/promo.marketing.v1.CouponService/GetCouponBatch",
        SHOP_OPERATORS,
        MARKETING,
    ),
    rule(
        "/promo.marketing.v1.CouponService/GetCoupon",
        SHOP_CUSTOMERS,
        MARKETING,
    ),
    rule(
        "/promo.marketing.v1.CouponService/ListCoupons",
        SHOP_CUSTOMERS,
        MARKETING,
    ),
    rule(
        "/promo.marketing.v1.CouponService/ValidateCoupon",
        SHOP_ANYONE,
        MARKETING,
    ),
    rule(
        "/promo.marketing.v1.CouponService/ExportCoupons",
        SHOP_OPERATORS,
        MARKETING,
    ),
    rule(
        "/promo.marketing.v1.PricingService/EvaluateCart",
        SHOP_BACKEND,
        MARKETING,
    ),
    rule(
        "/promo.marketing.v1.PricingService/CreateRedemption",
        SHOP_BACKEND,
        MARKETING,
    ),
    rule(
        "/promo.marketing.v1.PricingService/ConfirmRedemption",
        SHOP_BACKEND,
        MARKETING,
    ),
    rule(
        "/promo.marketing.v1.PricingService/RollbackRedemption",
        SHOP_BACKEND,
        MARKETING,
    ),
    rule(
        "/promo.marketing.v1.PricingService/GetRedemption",
        SHOP_BACKEND,
        MARKETING,
    ),
    rule(
        "/promo.marketing.v1.PricingService/RedeemPromoCode",
        SHOP_ANYONE,
        MARKETING,
    ),
    rule(
        "/promo.marketing.v1.ParticipationService/JoinCampaign",
        SHOP_ANYONE,
        MARKETING,
    ),
    rule(
        "/promo.marketing.v1.ParticipationService/ListParticipations",
        SHOP_CUSTOMERS,
        MARKETING,
    ),
    rule(
        "/promo.marketing.v1.ParticipationService/ReportCustomerEvent",
        SHOP_BACKEND,
        MARKETING,
    ),
    rule(
        "/promo.marketing.v1.DisplayService/CreateDisplay",
        SHOP_OPERATORS,
        MARKETING,
    ),
    rule(
        "/promo.marketing.v1.DisplayService/ListDisplays",
        SHOP_BACKEND,
        MARKETING,
    ),
    rule(
        "/promo.growth.v1.ReferralService/CreateReferralProgram",
        SHOP_OPERATORS,
        GROWTH,
    ),
    rule(
        "/promo.growth.v1.ReferralService/GetReferralProgram",
        SHOP_ANYONE,
        GROWTH,
    ),
    rule(
        "/promo.growth.v1.ReferralService/GetReferralCode",
        SHOP_ANYONE,
        GROWTH,
    ),
    rule(
        "/promo.growth.v1.ReferralService/TrackReferral",
        SHOP_ANYONE,
        GROWTH,
    ),
    rule(
        "/promo.growth.v1.ReferralService/RecordReferralConversion",
        SHOP_BACKEND,
        GROWTH,
    ),
    rule(
        "/promo.growth.v1.ReferralService/GetReferralStats",
        SHOP_ANYONE,
        GROWTH,
    ),
    rule(
        "/promo.growth.v1.AffiliateService/ApplyAffiliate",
        SHOP_ANYONE,
        GROWTH,
    ),
    rule(
        "/promo.growth.v1.AffiliateService/ApproveAffiliate",
        SHOP_OPERATORS,
        GROWTH,
    ),
    rule(
        "/promo.growth.v1.AffiliateService/SuspendAffiliate",
        SHOP_OPERATORS,
        GROWTH,
    ),
    rule(
        "/promo.growth.v1.AffiliateService/ReactivateAffiliate",
        SHOP_OPERATORS,
        GROWTH,
    ),
    rule(
        "/promo.growth.v1.AffiliateService/TerminateAffiliate",
        SHOP_OPERATORS,
        GROWTH,
    ),
    rule(
        "/promo.growth.v1.AffiliateService/GetAffiliate",
        AFFILIATE_READERS,
        GROWTH,
    ),
    rule(
        "/promo.growth.v1.AffiliateService/RecordAffiliateSale",
        SHOP_BACKEND,
        GROWTH,
    ),
    rule(
        "/promo.growth.v1.AffiliateService/RecordRefund",
        SHOP_BACKEND,
        GROWTH,
    ),
    rule(
        "/promo.growth.v1.AffiliateService/GetAffiliateDashboard",
        AFFILIATE_READERS,
        GROWTH,
    ),
    rule(
        "/promo.growth.v1.LinkService/CreateChannel",
        SHOP_OPERATORS,
        GROWTH,
    ),
    rule(
        "/promo.growth.v1.LinkService/CreateLink",
        SHOP_OPERATORS,
        GROWTH,
    ),
    rule("/promo.growth.v1.LinkService/GetLink", SHOP_BACKEND, GROWTH),
    rule(
        "/promo.growth.v1.LinkService/RecordClick",
        SHOP_BACKEND,
        GROWTH,
    ),
    rule(
        "/promo.growth.v1.LinkService/RecordLinkConversion",
        SHOP_BACKEND,
        GROWTH,
    ),
    rule(
        "/promo.growth.v1.GamificationService/CreateBadge",
        SHOP_OPERATORS,
        GROWTH,
    ),
    rule(
        "/promo.growth.v1.GamificationService/RecordActivity",
        ACTIVITY_REPORTERS,
        GROWTH,
    ),
    rule(
        "/promo.growth.v1.GamificationService/ListBadges",
        SHOP_ANYONE,
        GROWTH,
    ),
    rule(
        "/promo.growth.v1.GamificationService/GetLeaderboard",
        SHOP_ANYONE,
        GROWTH,
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

/// Every rule: the platform's and each domain's table.
pub fn rules() -> impl Iterator<Item = &'static MethodRule> {
    RULES.iter().chain(crate::access_payouts::RULES)
}

pub fn lookup(path: &str) -> Access {
    if OPEN_PREFIXES.iter().any(|prefix| path.starts_with(prefix)) {
        return Access::Open;
    }
    rules()
        .find(|rule| rule.path == path)
        .map_or(Access::Unknown, Access::Protected)
}
