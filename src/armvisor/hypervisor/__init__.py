"""The EL2 hypervisor: guest VMs at EL1 on the machine's physical CPUs (issue 5)."""
