"""The serial link to the guest's agent: the protocol's grammar and the console client."""
