; A hand-written module in the typed-pointer dialect of older clangs (devmap's NCC IR):
; unnamed arguments, "; <label>:N:" block comments and a switch.
define void @k(i32, float*) {
  %3 = icmp sgt i32 %0, 1
  switch i32 %0, label %7 [
    i32 1, label %4
    i32 2, label %5
  ]

; <label>:4:                                      ; preds = %2
  store float 1.000000e+00, float* %1, align 4
  br label %7

; <label>:5:                                      ; preds = %2
  %6 = bitcast float* %1 to i32*
  br label %7

; <label>:7:                                      ; preds = %5, %4, %2
  ret void
}
