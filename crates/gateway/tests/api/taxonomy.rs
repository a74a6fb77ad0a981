//! Material types and synonyms are each workspace's own data, managed by its admins and ops.

use kernel::Role;
use proto::promotion::v1 as pb;
use proto::promotion::v1::material_service_client::MaterialServiceClient;
use proto::promotion::v1::selection_service_client::SelectionServiceClient;
use tonic::Code;
use uuid::Uuid;

use crate::helpers::{TestApp, authed, reason, request_id, spawn_app};

fn client(app: &TestApp) -> MaterialServiceClient<tonic::transport::Channel> {
    MaterialServiceClient::new(app.channel.clone())
}

async fn types(app: &TestApp, token: &str) -> Vec<pb::MaterialType> {
    client(app)
        .list_material_types(authed(pb::ListMaterialTypesRequest::default(), token))
        .await
        .expect("types")
        .into_inner()
        .material_types
}

async fn save(
    app: &TestApp,
    token: &str,
    name: &str,
    synonyms: &[&str],
    creating: bool,
) -> Result<pb::MaterialType, tonic::Status> {
    let material_type = Some(pb::MaterialType {
        name: name.to_owned(),
        synonyms: synonyms.iter().map(|s| (*s).to_owned()).collect(),
        ..Default::default()
    });
    let result = if creating {
        client(app)
            .create_material_type(authed(
                pb::CreateMaterialTypeRequest {
                    request_id: request_id(),
                    material_type,
                },
                token,
            ))
            .await
    } else {
        client(app)
            .update_material_type(authed(
                pb::UpdateMaterialTypeRequest {
                    request_id: request_id(),
                    material_type,
                },
                token,
            ))
            .await
    };
    result.map(|response| response.into_inner())
}

async fn import(app: &TestApp, token: &str, rows: &[(&str, &str)]) -> Vec<pb::Material> {
    client(app)
        .import_materials(authed(
            pb::ImportMaterialsRequest {
                request_id: request_id(),
                materials: rows
                    .iter()
                    .map(|(name, material_type)| pb::Material {
                        name: (*name).to_owned(),
                        material_type: (*material_type).to_owned(),
                        ..Default::default()
                    })
                    .collect(),
            },
            token,
        ))
        .await
        .expect("import")
        .into_inner()
        .materials
}

async fn types_in(app: &TestApp, prompt: &str) -> Vec<String> {
    app.refresh_selection().await;
    SelectionServiceClient::new(app.channel.clone())
        .select_materials(authed(
            pb::SelectMaterialsRequest {
                request_id: request_id(),
                prompt: prompt.to_owned(),
                ..Default::default()
            },
            &app.token(&[Role::Generator]),
        ))
        .await
        .expect("select")
        .into_inner()
        .selections
        .into_iter()
        .map(|selection| selection.material_type)
        .collect()
}

#[tokio::test]
async fn a_type_that_exists_is_never_renamed_into_another() {
    let app = spawn_app().await;
    let admin = app.token(&[Role::Admin]);
    let defaults = types(&app, &admin).await;
    assert_eq!(defaults.len(), 9);
    let metal = defaults
        .iter()
        .find(|t| t.name == "metal")
        .expect("metal")
        .clone();
    assert!(metal.synonyms.contains(&"steel".to_owned()));
    assert_eq!(
        import(&app, &admin, &[("Blackened steel", "Steel")]).await[0].material_type,
        "metal",
        "by default steel is a synonym of metal"
    );

    let factory = app.token(&[Role::Factory]);
    let refused = save(&app, &factory, "steel", &[], true)
        .await
        .expect_err("factories do not edit the taxonomy");
    assert_eq!(reason(&refused), "ROLE_NOT_ADMITTED");
    let synonym = save(&app, &admin, "steel", &[], true)
        .await
        .expect_err("steel names metal");
    assert_eq!(
        (synonym.code(), reason(&synonym)),
        (Code::FailedPrecondition, "NAME_IS_A_SYNONYM".to_owned())
    );
    assert!(synonym.message().contains("metal"), "{}", synonym.message());

    let without_steel: Vec<&str> = metal
        .synonyms
        .iter()
        .map(String::as_str)
        .filter(|s| *s != "steel")
        .collect();
    save(&app, &admin, "metal", &without_steel, false)
        .await
        .expect("metal keeps its other synonyms");
    let in_use = save(&app, &admin, "steel", &["inox", "brushed steel"], true)
        .await
        .expect_err("brushed steel still names metal");
    assert_eq!(reason(&in_use), "SYNONYM_IN_USE");
    let steel = save(&app, &admin, "Steel", &["INOX"], true)
        .await
        .expect("a steel type");
    assert_eq!(
        (steel.name.as_str(), steel.synonyms.clone()),
        ("steel", vec!["inox".to_owned()])
    );
    assert_eq!(
        reason(
            &save(&app, &admin, "steel", &[], true)
                .await
                .expect_err("twice")
        ),
        "MATERIAL_TYPE_EXISTS"
    );

    let imported = import(
        &app,
        &admin,
        &[
            ("Satin steel", "steel"),
            ("Inox sheet", "inox"),
            ("Oak", "walnut"),
            ("Tin", "metal"),
        ],
    )
    .await;
    assert_eq!(
        imported
            .iter()
            .map(|m| m.material_type.as_str())
            .collect::<Vec<_>>(),
        ["steel", "steel", "wood", "metal"]
    );
    assert_eq!(types_in(&app, "a steel chair").await, ["steel"]);
    assert_eq!(
        types_in(&app, "an INOX frame on oak").await,
        ["steel", "wood"]
    );

    // Another workspace keeps the defaults.
    let other = app.other_workspace("elsewhere").await;
    let other_admin = app.token_for(Uuid::new_v4(), other, &[Role::Admin]);
    assert_eq!(
        import(&app, &other_admin, &[("Rebar", "steel")]).await[0].material_type,
        "metal"
    );
    assert!(
        !types(&app, &other_admin)
            .await
            .iter()
            .any(|t| t.name == "steel")
    );
}

#[tokio::test]
async fn prompts_and_types_in_any_script_match_their_types() {
    let app = spawn_app().await;
    let ops = app.token(&[Role::Ops]);
    save(&app, &ops, "Madera", &["roble", "Érable"], true)
        .await
        .expect("a Spanish type with a French synonym");
    let imported = import(
        &app,
        &ops,
        &[("Roble macizo", "ROBLE"), ("Tablero", "madera")],
    )
    .await;
    assert!(imported.iter().all(|m| m.material_type == "madera"));
    assert_eq!(types_in(&app, "UNA MESA DE ROBLE").await, ["madera"]);
    assert_eq!(types_in(&app, "un bureau en érable").await, ["madera"]);
    assert_eq!(
        types_in(&app, "un bureau en E\u{301}RABLE").await,
        ["madera"],
        "a decomposed accent matches"
    );
    let by_type = SelectionServiceClient::new(app.channel.clone())
        .select_materials(authed(
            pb::SelectMaterialsRequest {
                request_id: request_id(),
                material_types: vec!["Roble".to_owned()],
                ..Default::default()
            },
            &app.token(&[Role::Generator]),
        ))
        .await
        .expect("select")
        .into_inner();
    assert_eq!(by_type.selections[0].material_type, "madera");
}
