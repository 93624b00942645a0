# Shared by the stage and probe scripts: source it from the repository root (after `cd "$(dirname "$0")/.."`). It
# puts the repository on PYTHONPATH with unbuffered output, and defines run_logged (set LOG_DIR before calling
# it) and write_world.
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

# write_world <python> <world> <clips> <seconds> [<resample> ...]: the synthetic benchmark world (seed 0) and its
# resamples 1, 2, ... (same clips and speakers, listeners redrawn: the oracle), written side by side, each
# folder's log beside it as <folder>.log; a folder already written is kept. Fails if any writer failed.
write_world() {
    local python="$1" world="$2" clips="$3" seconds="$4"; shift 4
    local targets=("$world" "$@") pids=() seed status=0 pid
    for seed in "${!targets[@]}"; do
        [ -f "${targets[$seed]}/meta.json" ] && continue
        $python -m data_utils.synthetic_dyadic --out "${targets[$seed]}" --clips "$clips" --seconds "$seconds" \
            --seed 0 --resample_seed "$seed" > "${targets[$seed]}.log" 2>&1 &
        pids+=($!)
    done
    for pid in "${pids[@]}"; do wait "$pid" || status=1; done
    return "$status"
}
