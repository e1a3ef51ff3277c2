; A hand-written module in clang 22's dialect (opaque pointers) for graph-builder tests.
define i32 @add(i32 %a, i32 %b) {
entry:
  %s = add nsw i32 %a, %b
  ret i32 %s
}

define i32 @main() {
entry:
  %x = alloca i32, align 4
  store i32 3, ptr %x, align 4
  %v = load i32, ptr %x, align 4
  %c = icmp sgt i32 %v, 0
  br i1 %c, label %then, label %done

then:
  %r = call i32 @add(i32 %v, i32 1)
  br label %done

done:
  %p = phi i32 [ 0, %entry ], [ %r, %then ]
  %q = call i32 @abs(i32 %p)
  ret i32 %q
}

declare i32 @abs(i32)
