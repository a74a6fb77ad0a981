use std::collections::BTreeSet;

use gateway::access::{Access, lookup, rules};
use prost::Message;

/// Every method of every service the gateway really registers, as `/package.Service/Method`.
async fn registered_methods() -> BTreeSet<String> {
    let (app, _dir) =
        crate::helpers::build_app(|_| {}, std::sync::Arc::new(kernel::SystemClock)).await;
    let directory = std::sync::Arc::new(gateway::directory::WorkspaceDirectory::new(
        app.context.db.clone(),
        std::time::Duration::from_secs(1),
    ));
    let registry = app.registry(directory);
    let mut methods = BTreeSet::new();
    for encoded in registry.descriptor_sets() {
        let set = prost_types::FileDescriptorSet::decode(*encoded).expect("descriptor set");
        for file in set
            .file
            .iter()
            .filter(|file| file.package().starts_with("promo."))
        {
            for service in &file.service {
                let name = format!("{}.{}", file.package(), service.name());
                if !registry.service_names().contains(&name.as_str()) {
                    continue;
                }
                for method in &service.method {
                    methods.insert(format!("/{name}/{}", method.name()));
                }
            }
        }
    }
    methods
}

#[tokio::test]
async fn every_registered_method_has_an_access_rule() {
    let methods = registered_methods().await;
    assert!(
        methods.len() >= 6,
        "expected the admin service at least, found {methods:?}"
    );
    let unprotected: Vec<_> = methods
        .iter()
        .filter(|method| !matches!(lookup(method), Access::Protected(_)))
        .collect();
    assert!(
        unprotected.is_empty(),
        "methods without an access rule: {unprotected:?}"
    );
}

#[test]
fn every_access_rule_names_a_real_method_and_admits_someone() {
    let mut known = BTreeSet::new();
    for encoded in proto::ALL_FILE_DESCRIPTOR_SETS {
        let set = prost_types::FileDescriptorSet::decode(*encoded).expect("descriptor set");
        for file in &set.file {
            for service in &file.service {
                for method in &service.method {
                    known.insert(format!(
                        "/{}.{}/{}",
                        file.package(),
                        service.name(),
                        method.name()
                    ));
                }
            }
        }
    }
    for rule in rules() {
        assert!(known.contains(rule.path), "stale rule {}", rule.path);
        assert!(!rule.roles.is_empty(), "rule {} admits nobody", rule.path);
    }
}

#[test]
fn unknown_methods_are_refused_and_health_is_open() {
    assert!(matches!(
        lookup("/promo.secret.v1.Backdoor/Open"),
        Access::Unknown
    ));
    assert!(matches!(
        lookup("/grpc.health.v1.Health/Check"),
        Access::Open
    ));
}
