# shellcheck shell=bash disable=SC2034 # IMG_ globals are read by the callers
# Helpers for the Debian image scripts (sourced).  Globals start with IMG_.

IMG_DIR=${KRG_IMAGE_DIR:-/var/cache/krg-vmm/images}
IMG_NAME=debian-bookworm

# What the image prints on its serial console, in boot order, as
# name|extended regex: the krg-image lines come from the image's own
# initramfs scripts and units (build-image.sh), "login:" from the getty.
IMG_MILESTONES=(
	"initramfs|krg-image: initramfs started"
	"root_fs|krg-image: initramfs done"
	"systemd|krg-image: systemd started"
	"login_prompt|login:"
	"system_running|krg-image: system-running="
)
# Lines after which the guest will not get anywhere.
IMG_FATAL='Kernel panic - not syncing|end Kernel panic|ALERT! .* does not exist|Gave up waiting for root'

img_say() {
	printf 'image: %s\n' "$*" >&2
}

img_die() {
	printf 'image: %s\n' "$*" >&2
	exit 1
}

img_since() {
	awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'
}

# img_watch LABEL PID LOG TIMEOUT_S [HEARTBEAT_S]: follows a booting guest
# until the system-running line and the login prompt have both appeared,
# the process exits, a fatal line shows, or TIMEOUT_S pass.  Sets
# IMG_SEEN ("name=seconds ..."), IMG_ELAPSED and IMG_OUTCOME (booted,
# exited, fatal, timeout); does not stop the process.
img_watch() {
	local label=$1 pid=$2 log=$3 tmo=$4 beat=${5:-300}
	local t0=$EPOCHREALTIME next=$beat now m name pat last
	local -A seen=()

	IMG_SEEN=""
	IMG_OUTCOME=timeout
	while :; do
		now=$(img_since "$t0")
		for m in "${IMG_MILESTONES[@]}"; do
			name=${m%%|*}
			pat=${m#*|}
			if [[ -z ${seen[$name]:-} ]] && grep -aqE -- "$pat" "$log"; then
				seen[$name]=$now
				IMG_SEEN+="$name=${now}s "
				img_say "  [$label] $name after ${now}s"
			fi
		done
		if [[ -n ${seen[system_running]:-} && -n ${seen[login_prompt]:-} ]]; then
			IMG_OUTCOME=booted
			break
		fi
		if grep -aqE -- "$IMG_FATAL" "$log"; then
			IMG_OUTCOME=fatal
			break
		fi
		if ! kill -0 "$pid" 2>/dev/null; then
			IMG_OUTCOME=exited
			break
		fi
		if ((${now%.*} >= tmo)); then
			break
		fi
		if ((${now%.*} >= next)); then
			last=$(tr -d '\r' <"$log" | sed 's/\x1b\[[0-9;?]*[A-Za-z]//g' |
				{ grep -av '^[[:space:]]*$' || true; } | tail -n 1 | cut -c1-100)
			img_say "  [$label] ${now}s, log $(wc -c <"$log") bytes, last: ${last:-<nothing yet>}"
			next=$((next + beat))
		fi
		sleep 1
	done
	IMG_ELAPSED=$(img_since "$t0")
	IMG_SEEN=${IMG_SEEN% }
}

# The state krg-report.service printed, or empty.
img_state() {
	tr -d '\r' <"$1" | sed -n 's/.*krg-image: system-running=\([a-z-]*\).*/\1/p' | head -n 1
}

# The image's report lines (startup time, failed units, network).
img_report() {
	tr -d '\r' <"$1" | grep -a '^krg-image: ' | grep -av 'initramfs\|systemd started' || true
}
