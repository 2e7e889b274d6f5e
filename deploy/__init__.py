"""How the pipeline runs: the embedded dev stack, the demo launcher, the CLI, and the production
stack files (compose/, k8s/, grafana/, prometheus/)."""
