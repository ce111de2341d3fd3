use proc_macro::TokenStream;
/// placeholder
#[proc_macro_attribute]
pub fn mpc_model(_a: TokenStream, i: TokenStream) -> TokenStream { i }
