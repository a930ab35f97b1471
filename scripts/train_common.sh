# Shared by the training launchers (sourced, from the repository root).

# output_dir_of FLAGS...: the --output_dir value among train.py flags (train_output when none is given).
output_dir_of() {
  local dir=train_output args=("$@") i
  for ((i = 0; i < ${#args[@]}; i++)); do
    case "${args[$i]}" in
      --output_dir=*) dir=${args[$i]#--output_dir=} ;;
      --output_dir) [ $((i + 1)) -lt ${#args[@]} ] && dir=${args[$((i + 1))]} ;;
    esac
  done
  echo "$dir"
}

# MindSpore's C++ log (cluster connection retries, communication-group set-up) buries the project's own lines at its
# default level, WARNING: the launchers show its errors only. IPT_DEBUG=1, or GLOG_v set by the caller, keeps it.
if [ "${IPT_DEBUG:-0}" != 1 ]; then export GLOG_v=${GLOG_v:-3}; fi
