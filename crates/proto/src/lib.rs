//! Generated gRPC code and the encoded file descriptor set of every package, for reflection.
#![forbid(unsafe_code)]
#![allow(clippy::all, missing_docs, rust_2018_idioms)]

pub mod codec;

pub mod admin {
    pub mod v1 {
        tonic::include_proto!("promo.admin.v1");
        /// Encoded `FileDescriptorSet` of `promo.admin.v1` and its imports.
        pub const FILE_DESCRIPTOR_SET: &[u8] =
            tonic::include_file_descriptor_set!("promo.admin.v1");
    }
}

pub mod growth {
    pub mod v1 {
        tonic::include_proto!("promo.growth.v1");
        /// Encoded `FileDescriptorSet` of `promo.growth.v1` and its imports.
        pub const FILE_DESCRIPTOR_SET: &[u8] =
            tonic::include_file_descriptor_set!("promo.growth.v1");
    }
}

pub mod ledger {
    pub mod v1 {
        tonic::include_proto!("promo.ledger.v1");
        /// Encoded `FileDescriptorSet` of `promo.ledger.v1` and its imports.
        pub const FILE_DESCRIPTOR_SET: &[u8] =
            tonic::include_file_descriptor_set!("promo.ledger.v1");
    }
}

pub mod marketing {
    pub mod v1 {
        tonic::include_proto!("promo.marketing.v1");
        /// Encoded `FileDescriptorSet` of `promo.marketing.v1` and its imports.
        pub const FILE_DESCRIPTOR_SET: &[u8] =
            tonic::include_file_descriptor_set!("promo.marketing.v1");
    }
}

pub mod payouts {
    pub mod v1 {
        tonic::include_proto!("promo.payouts.v1");
        /// Encoded `FileDescriptorSet` of `promo.payouts.v1` and its imports.
        pub const FILE_DESCRIPTOR_SET: &[u8] =
            tonic::include_file_descriptor_set!("promo.payouts.v1");
    }
}

pub mod promotion {
    pub mod v1 {
        tonic::include_proto!("promo.promotion.v1");
        /// Encoded `FileDescriptorSet` of `promo.promotion.v1` and its imports.
        pub const FILE_DESCRIPTOR_SET: &[u8] =
            tonic::include_file_descriptor_set!("promo.promotion.v1");
    }
}

/// Encoded `FileDescriptorSet` of the google.rpc error-detail messages, so reflection clients can
/// decode `grpc-status-details-bin`.
pub const ERROR_DETAILS_FILE_DESCRIPTOR_SET: &[u8] =
    tonic::include_file_descriptor_set!("google.rpc");

/// Every descriptor set a server built from this crate may register with reflection.
pub const ALL_FILE_DESCRIPTOR_SETS: &[&[u8]] = &[
    admin::v1::FILE_DESCRIPTOR_SET,
    growth::v1::FILE_DESCRIPTOR_SET,
    ledger::v1::FILE_DESCRIPTOR_SET,
    marketing::v1::FILE_DESCRIPTOR_SET,
    payouts::v1::FILE_DESCRIPTOR_SET,
    promotion::v1::FILE_DESCRIPTOR_SET,
    ERROR_DETAILS_FILE_DESCRIPTOR_SET,
];
