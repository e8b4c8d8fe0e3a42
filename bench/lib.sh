# Shared by the bench/ scripts (sourced): the facts every RESULTS.md entry
# starts with.
#   bench_machine_facts   sets date (UTC, YYYY-MM-DD), cpu (model name) and
#                         kvm_kind (PVM or hardware virtualization)
bench_machine_facts() {
	date=$(date -u +%Y-%m-%d)
	cpu=$(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)
	kvm_kind=$([[ -d /sys/module/kvm_pvm ]] && echo "PVM (kvm_pvm)" || echo "hardware (VT-x/AMD-V)")
}
