//! Test worlds in network namespaces.
