"""Local emulators of cloud APIs (documented JSON/gRPC), for the demo and the tests."""
