export const BURROW_VERSION = "0.1.0";
