#!/bin/sh
# Trains the tiny models of each example family read by VWOptionsTests (vw 9.11.9, -b 4).
set -eu
cd "$(dirname "$0")"
vw=${VW:-../../../../bin/vw}
t() { name=$1; data=$2; shift 2; printf "$data" > /tmp/$name.txt; $vw --quiet -b 4 "$@" -d /tmp/$name.txt -f $name.vw; }
t simple '1 |a x\n0 |a y\n'
t logistic '1 |a x\n-1 |a y\n' --loss_function logistic --link logistic
t oaa '1 |a x\n2 |a y\n' --oaa 3
t ect '1 |a x\n2 |a y\n' --ect 3
t multilabel '1,2 |a x\n0 |a y\n' --multilabel_oaa 3
t csoaa '1:0 2:1 |a x\n' --csoaa 3
t cb '1:1:0.5 |a x\n' --cb 3
t cb_explore '1:1:0.5 |a x\n' --cb_explore 3
t cb_legacy '1:1:0.5 |a x\n' --cb 3 --cb_force_legacy
t cb_adf 'shared |s u\n0:1:0.5 |a x\n|a y\n\n' --cb_adf
t cb_explore_adf 'shared |s u\n0:1:0.5 |a x\n|a y\n\n' --cb_explore_adf --softmax
t csoaa_ldf '1:0 |a x\n2:1 |a y\n\n' --csoaa_ldf multiline
t csoaa_ldf_rank '1:0 |a x\n2:1 |a y\n\n' --csoaa_ldf multiline --csoaa_rank
t wap_ldf '1:0 |a x\n2:1 |a y\n\n' --wap_ldf multiline
t ccb 'ccb shared |s u\nccb action |a x\nccb action |a y\nccb slot 0:1:0.5 |s z\n\n' --ccb_explore_adf
t slates 'slates shared 1 |s u\nslates action 0 |a x\nslates action 1 |a y\nslates slot 0:0.5 |s z\nslates slot 1:0.5 |s w\n\n' --slates
t cbify '1 |a x\n' --cbify 3
t nn '1 |a x\n' --nn 2 -q ab --cubic abc --interactions a::
t cb_adf_rank_all 'shared |s u\n0:1:0.5 |a x\n|a y\n\n' --cb_adf --rank_all
printf '1 |a x y z\n' > /tmp/ngram.txt; $vw --quiet -b 5 --ngram 2 --skips 1 -d /tmp/ngram.txt -f ngram.vw
