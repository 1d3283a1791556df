#!/usr/bin/env bash
# A short run of tests/soak.sh: four rounds of kill -9, restart and join on
# five sheep with copies=3 while a verifying writer keeps writing; every
# round must settle to exact placement and lose no acknowledged write.
# SOAK_* variables set by the caller are passed on (see tests/soak.sh).
export SOAK_VDI_SIZE=${SOAK_VDI_SIZE:-64M}
export SOAK_SETTLE_TIMEOUT=${SOAK_SETTLE_TIMEOUT:-60}
exec bash "$(dirname "$0")/../soak.sh" "${SOAK_ROUNDS:-4}"
