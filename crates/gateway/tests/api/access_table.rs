use std::collections::BTreeSet;

use gateway::access::{Access, RULES, lookup};
use prost::Message;

/// Every method of every service the gateway registers, as `/package.Service/Method`.
fn registered_methods() -> BTreeSet<String> {
    let mut methods = BTreeSet::new();
    for encoded in gateway::server::registered_descriptor_sets() {
        let set = prost_types::FileDescriptorSet::decode(encoded).expect("descriptor set");
        for file in set
            .file
            .iter()
            .filter(|file| file.package().starts_with("promo."))
        {
            for service in &file.service {
                for method in &service.method {
                    methods.insert(format!(
                        "/{}.{}/{}",
                        file.package(),
                        service.name(),
                        method.name()
                    ));
                }
            }
        }
    }
    methods
}

#[test]
fn every_registered_method_has_an_access_rule() {
    let methods = registered_methods();
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
    for rule in RULES {
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
