"""Operations: the local stack, topic provisioning, CLI tools, deployment files and benchmarks."""
