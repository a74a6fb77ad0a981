//! `promo demo`: a small data set in the default workspace and the grpcurl commands to explore it.

use kernel::Role;
use kernel::workspace::{self, DEFAULT_WORKSPACE};
use uuid::Uuid;

use crate::server::App;

pub async fn load(app: App) -> anyhow::Result<()> {
    let connection = app.context.db.connection();
    let default = workspace::find_by_name(connection, DEFAULT_WORKSPACE)
        .await?
        .ok_or_else(|| anyhow::anyhow!("the default workspace is missing"))?;
    let admin = Uuid::new_v4();
    let token = app
        .issuer
        .issue(admin, default.id, &[Role::Admin], 3600)
        .map_err(anyhow::Error::msg)?;
    let listen = &app.config.listen;
    println!("demo workspace: {} ({})", default.name, default.id);
    println!();
    println!("export TOKEN={token}");
    println!("grpcurl -plaintext {listen} list");
    println!(
        "grpcurl -plaintext -H \"authorization: Bearer $TOKEN\" {listen} promo.admin.v1.WorkspaceService/GetWorkspace"
    );
    println!(
        "grpcurl -plaintext -H \"authorization: Bearer $TOKEN\" {listen} promo.admin.v1.WorkspaceService/GetSettings"
    );
    Ok(())
}
