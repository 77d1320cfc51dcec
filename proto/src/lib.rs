//! Generated stubs for the gongji v1 gRPC contract (see the `.proto` files beside this crate).

/// `gongji.binding.v1`: the insured-person registry and family bindings.
pub mod binding {
    #[allow(clippy::all, missing_docs)]
    pub mod v1 {
        tonic::include_proto!("gongji.binding.v1");
    }
}

/// `gongji.payment.v1`: accounts, ledger, premiums, medical expenses, settlement.
pub mod payment {
    #[allow(clippy::all, missing_docs)]
    pub mod v1 {
        tonic::include_proto!("gongji.payment.v1");
    }
}

/// The encoded `FileDescriptorSet` of the whole contract plus `google/rpc/error_details.proto`,
/// for gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("gongji_descriptor");
