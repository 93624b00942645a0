# Shared by the GPU stage scripts: source it from the repository root (after `cd "$(dirname "$0")/.."`). It puts
# the repository on PYTHONPATH with unbuffered output, and defines run_logged (set LOG_DIR before calling it).
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1

# run_logged <log name> <command...>: runs the command with its output in $LOG_DIR/<log name>.log, prints the
# log's last $TAIL_LINES lines (25) and the exit status and seconds taken, and returns the command's status,
# so a stage goes on after a failure unless its caller decides otherwise.
run_logged() {
    local name="$1"; shift
    echo "[$(date +%H:%M:%S)] === $name: $*"
    local start=$SECONDS
    "$@" > "$LOG_DIR/$name.log" 2>&1
    local code=$?
    tail -n "${TAIL_LINES:-25}" "$LOG_DIR/$name.log"
    echo "[$(date +%H:%M:%S)] === $name: exit $code after $((SECONDS - start)) s"
    return "$code"
}
