;; sabre's kernel: the hottest paths (reads, and HashMap's writes of one
;; key), compiled to WebAssembly over the heap's own memory.
;;
;; Why: V8 compiles every `Atomics.load`/`Atomics.store` in JavaScript to a
;; call of a builtin (8-13 ns each), while a WebAssembly `i32.atomic.load` is
;; one instruction (a plain load on x86-64, LDAR on ARM64). A lookup that needs
;; an epoch pin (two stores) and two or three atomic loads therefore costs
;; several times less here, call included.
;;
;; Memory model: WebAssembly atomics are sequentially consistent and share
;; ECMAScript's memory model with `Atomics`, so each function below follows
;; the same rule as the JavaScript it replaces: words that others change are
;; read with atomic loads (pattern a); plain loads only read memory behind a
;; pointer that an atomic load returned, which is immutable once published and
;; freed only through epochs (pattern b), while the function holds a pin.
;; The sets write shared words only with atomic read-modify-writes, and
;; publish an entry that JavaScript filled before the call with one CAS
;; (pattern b: the block is immutable from then on).
;;
;; Pinning: each instance belongs to one worker, and knows that worker's
;; epoch word in the heap's registry (setPinWord, called by SharedHeap when
;; the worker joins the heap and when it leaves; 0 while it has not joined).
;; A function pins only when that word holds 0: a nonzero word means the
;; worker is pinned already (SharedHeap.pin(); epochs are never 0), and the
;; function then leaves the word as it finds it. A pin stores the global
;; epoch (header word H_EPOCH, byte EPOCH_AT) in the word and the unpin
;; stores 0, as SharedHeap.pin()/unpin() do. A worker that has not joined
;; gets the bail-out answer, and its general path joins. Keeping the word
;; here rather than passing it in spares each call a chain of JavaScript
;; loads (heap, slot, pin depth) that measured about a third of a get at 1M
;; keys. A function traps (out of bounds) when it meets memory that another
;; worker has just grown and this instance has not been told about yet; the
;; caller then undoes the pin with kernelTrapped (_heap_hooks.ts) and takes its
;; JavaScript path.
;;
;; Read pins: while SharedHeap allows them (allowReadPins, which it calls
;; only while the worker holds no pin of its own), the gets do not unpin.
;; The word keeps the epoch of the last get, and a get that finds the global
;; epoch moved on stores the new one: between two gets the worker holds
;; nothing, so moving its pin forward is an unpin and a pin in one store, and
;; the epoch keeps advancing while the worker reads. A get's loads come after
;; the SC store that pinned it, and its reads are ordered before any later
;; store to the word, as with a pin per call. SharedHeap ends the read pin
;; (endReadPins) at the end of the worker's task, before it blocks in sabre,
;; and on collect(), close() and its next pin(). So the two SC stores of a
;; pin and an unpin are paid once per task rather than once per get; per
;; get, they kept one get's cache misses from overlapping the next's. The
;; sets take no read pin: they pin as above. HashMap's two hottest gets,
;; hashmapGetInt and hashmapGetKeyInSlot, never pin per call: where the
;; worker holds neither a read pin nor a pin of its own, they answer SLOW
;; before reading anything, and the caller allows the read pin and asks
;; again. Their callers then need not look at the heap's pin state per get.
;;
;; The gets' results are f64: the value, or one of two sentinels that no integer value
;; can equal. SLOW (2^-1000 * 1.5): the caller must take its general path.
;; ABSENT (2^-1000 * 2.5): the key is absent. An f64 value that happens to
;; equal a sentinel is answered SLOW, and then correctly by the general path.
;;
;; The bytes embedded in _kernel.ts are this file assembled by
;; `deno task kernel`; a test checks that they match.
(module
  (import "sabre" "memory" (memory 1 65536 shared))

  (global $SLOW f64 (f64.const 0x1.8p-1000))
  (global $ABSENT f64 (f64.const 0x1.4p-999))

  ;; The calling worker's epoch word, or 0 before it joins the heap.
  (global $pinWord (mut i32) (i32.const 0))
  ;; Byte address of the heap header's H_EPOCH word (memory/_layout.ts).
  (global $EPOCH_AT (export "epochAt") i32 (i32.const 192))

  (func (export "setPinWord") (param $at i32)
    (global.set $pinWord (local.get $at)))

  ;; 1 while the gets may keep a read pin (see Read pins above), else 0.
  (global $readPins (mut i32) (i32.const 0))

  (func (export "allowReadPins")
    (global.set $readPins (i32.const 1)))

  ;; Ends read pins: the gets pin per call again. With `unpin` 1 the word is
  ;; cleared too; with 0 it is left to the caller, SharedHeap.pin(), which
  ;; stores its own epoch next.
  (func (export "endReadPins") (param $unpin i32)
    (if (i32.and (i32.and (local.get $unpin) (global.get $readPins)) (call $joined))
      (then (i32.atomic.store (global.get $pinWord) (i32.const 0))))
    (global.set $readPins (i32.const 0)))

  ;; Whether this worker can pin: it has joined the heap.
  (func $joined (result i32)
    (i32.ne (global.get $pinWord) (i32.const 0)))

  ;; Pins this worker unless it is pinned already; answers the word to unpin
  ;; ($unpin), or 0 when the pin was there before. Caller has checked $joined.
  (func $pin (result i32)
    (if (i32.atomic.load (global.get $pinWord)) (then (return (i32.const 0))))
    (i32.atomic.store (global.get $pinWord) (i32.atomic.load (global.get $EPOCH_AT)))
    (global.get $pinWord))

  ;; $pin for the gets: while read pins are allowed, keeps the word at the
  ;; global epoch (a store only where it is 0 or behind) and answers 0, so
  ;; that $unpin leaves it; else $pin. (The two hottest gets write out its
  ;; first half and answer SLOW in place of the second: see Read pins.)
  (func $pinToRead (result i32)
    (local $epoch i32)
    (if (global.get $readPins)
      (then
        (local.set $epoch (i32.atomic.load (global.get $EPOCH_AT)))
        (if (i32.ne (i32.atomic.load (global.get $pinWord)) (local.get $epoch))
          (then (i32.atomic.store (global.get $pinWord) (local.get $epoch))))
        (return (i32.const 0))))
    (call $pin))

  (func $unpin (param $pinAt i32)
    (if (local.get $pinAt)
      (then (i32.atomic.store (local.get $pinAt) (i32.const 0)))))

  ;; Loc.get: the location word holds a cell pointer (even: the cell's f64 is
  ;; the value, pattern b) or a descriptor pointer (odd: a commit is under way,
  ;; the general path resolves it).
  (func (export "locGet") (param $word i32) (result f64)
    (local $p i32) (local $value f64) (local $pinAt i32)
    (if (i32.eqz (call $joined)) (then (return (global.get $SLOW))))
    (local.set $pinAt (call $pinToRead))
    (local.set $p (i32.atomic.load (local.get $word)))
    (local.set $value
      (if (result f64) (i32.and (local.get $p) (i32.const 1))
        (then (global.get $SLOW))
        (else (f64.load (local.get $p)))))
    (call $unpin (local.get $pinAt))
    (local.get $value))

  ;; HashMap's mix32 (hashmap.ts), bit for bit.
  (func $mix32 (param $x i32) (result i32)
    (local.set $x (i32.mul (i32.xor (local.get $x) (i32.shr_u (local.get $x) (i32.const 16)))
                           (i32.const 0x85ebca6b)))
    (local.set $x (i32.mul (i32.xor (local.get $x) (i32.shr_u (local.get $x) (i32.const 13)))
                           (i32.const 0xc2b2ae35)))
    (i32.xor (local.get $x) (i32.shr_u (local.get $x) (i32.const 16))))

  ;; A value of kind `valueKind` (1 i32, 2 u32, 3 f64) at `at`, as an f64
  ;; for the gets' answers. An f64 value that equals a sentinel comes back as
  ;; SLOW, so that ABSENT always means absent and the general path reads
  ;; that value.
  (func $value (param $at i32) (param $valueKind i32) (result f64)
    (local $f64 f64)
    (if (result f64) (i32.eq (local.get $valueKind) (i32.const 1))
      (then (f64.convert_i32_s (i32.load (local.get $at))))
      (else
        (if (result f64) (i32.eq (local.get $valueKind) (i32.const 2))
          (then (f64.convert_i32_u (i32.load (local.get $at))))
          (else
            (local.set $f64 (f64.load (local.get $at)))
            (select (global.get $SLOW) (local.get $f64)
              (i32.or (f64.eq (local.get $f64) (global.get $SLOW))
                      (f64.eq (local.get $f64) (global.get $ABSENT)))))))))

  ;; Where the value of kind `valueKind` lies in the entry at `entry` of an
  ;; ASCII key of `length` bytes from byte `keyAt`: right after the key,
  ;; aligned to 8 for f64 (3), else to 4.
  (func $asciiValueAt (param $entry i32) (param $keyAt i32) (param $length i32)
    (param $valueKind i32) (result i32)
    (local $end i32)
    (local.set $end (i32.add (i32.add (local.get $entry) (local.get $keyAt)) (local.get $length)))
    (select
      (i32.and (i32.add (local.get $end) (i32.const 7)) (i32.const -8))
      (i32.and (i32.add (local.get $end) (i32.const 3)) (i32.const -4))
      (i32.eq (local.get $valueKind) (i32.const 3))))

  ;; HashMap.get for an i32 or u32 key (hashmap.ts #getInt32Key): the root
  ;; table's slots, probed linearly. `header` is the map header's byte
  ;; address; its word 2 (H_VALUE_CODEC) holds the value codec (1 i32, 2 u32,
  ;; 3 f64) and its word 5 (H_TABLE) the root table descriptor, whose words
  ;; 0 and 1 (capacity, slot array) never change. A slot holds 0 or an entry
  ;; pointer with tags FROZEN 1, DELETED 2, COPIED 4. An entry is [key,
  ;; value], the value at byte 4 (i32, u32) or 8 (f64). A frozen slot sends
  ;; the lookup down the chain of tables ($keyInChain); a full probe answers
  ;; SLOW.
  ;; Every instruction here showed in gets over 1M keys, far more than its
  ;; own cost (likely because the pin's SC stores keep one get's misses from
  ;; overlapping the next's): so the pin is written out rather than called,
  ;; and the value's codec is read from the header rather than passed (two
  ;; more parameters, even unused, measured 15-20% more per get).
  (func (export "hashmapGetInt") (param $header i32) (param $key i32) (result f64)
    (local $table i32) (local $slots i32) (local $mask i32) (local $i i32) (local $n i32)
    (local $slot i32) (local $entry i32) (local $result f64) (local $pinAt i32)
    (local $valueKind i32) (local $epoch i32) (local $hash i32)
    (local.set $pinAt (global.get $pinWord))
    (if (i32.eqz (local.get $pinAt)) (then (return (global.get $SLOW))))
    ;; A read pin (as $pinToRead), or the worker's own pin. With neither,
    ;; SLOW: the caller then arms the read pin (kernelForRead) and asks
    ;; again, so that its hot path need not read the heap's pin state.
    (if (global.get $readPins)
      (then
        (local.set $epoch (i32.atomic.load (global.get $EPOCH_AT)))
        (if (i32.ne (i32.atomic.load (local.get $pinAt)) (local.get $epoch))
          (then (i32.atomic.store (local.get $pinAt) (local.get $epoch)))))
      (else
        (if (i32.eqz (i32.atomic.load (local.get $pinAt)))
          (then (return (global.get $SLOW))))))
    (local.set $table (i32.atomic.load offset=20 (local.get $header)))
    (local.set $mask (i32.sub (i32.load (local.get $table)) (i32.const 1)))
    (local.set $slots (i32.load offset=4 (local.get $table)))
    (local.set $hash (call $mix32 (local.get $key)))
    (local.set $i (i32.shr_u (local.get $hash) (i32.clz (local.get $mask))))
    (local.set $result (global.get $SLOW))
    (block $done
      (loop $probe
        (local.set $slot
          (i32.atomic.load (i32.add (local.get $slots) (i32.shl (local.get $i) (i32.const 2)))))
        (if (i32.eqz (local.get $slot))
          (then (local.set $result (global.get $ABSENT)) (br $done)))
        (if (i32.and (local.get $slot) (i32.const 1))
          (then
            ;; An int key is 4 bytes at byte 0 of its entry.
            (local.set $result (call $chainValue
              (call $keyInChain (local.get $table) (local.get $hash) (i32.const 4)
                                (i32.const 0) (i32.const 0) (i32.const 0) (local.get $key)
                                (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0)
                                (i32.const 0) (i32.const 0) (i32.const 0))
              (i32.const 0) (i32.const 4) (i32.load offset=8 (local.get $header))))
            (br $done)))
        (local.set $entry (i32.and (local.get $slot) (i32.const -8)))
        (if (i32.eq (i32.load (local.get $entry)) (local.get $key))
          (then
            (if (i32.and (local.get $slot) (i32.const 2))
              (then (local.set $result (global.get $ABSENT)) (br $done)))
            (local.set $valueKind (i32.load offset=8 (local.get $header)))
            (local.set $result
              (if (result f64) (i32.eq (local.get $valueKind) (i32.const 1))
                (then (f64.convert_i32_s (i32.load offset=4 (local.get $entry))))
                (else (call $value
                  (i32.add (local.get $entry)
                           (select (i32.const 8) (i32.const 4)
                                   (i32.eq (local.get $valueKind) (i32.const 3))))
                  (local.get $valueKind)))))
            (br $done)))
        (local.set $i (i32.and (i32.add (local.get $i) (i32.const 1)) (local.get $mask)))
        (local.set $n (i32.add (local.get $n) (i32.const 1)))
        (br_if $probe (i32.le_u (local.get $n) (local.get $mask)))))
    (local.get $result))

  ;; For the sets: whether a resize of the root `table` is under way (its
  ;; T_NEXT, word 3, or T_RETIRING, word 7, is set).
  (func $resizing (param $table i32) (result i32)
    (i32.or (i32.atomic.load offset=12 (local.get $table))
            (i32.atomic.load offset=28 (local.get $table))))

  ;; For the sets: whether the claims (T_CLAIMED, word 2) of `table` reached
  ;; 7/8 of its capacity (`mask` + 1). A table gets there only when the heap
  ;; could not hold the growth that 3/4 started; its sets then go to the
  ;; general path, which grows now or fails, rather than fill the table,
  ;; where each miss would probe every slot.
  (func $nearlyFull (param $table i32) (param $mask i32) (result i32)
    (i32.ge_u
      (i32.shl (i32.atomic.load offset=8 (local.get $table)) (i32.const 3))
      (i32.mul (i32.add (local.get $mask) (i32.const 1)) (i32.const 7))))

  ;; For the sets, after the CAS that claimed an empty slot of `table`: counts
  ;; the claim (T_CLAIMED, word 2) and answers 1, or minus the table when the
  ;; claims passed 3/4 of its capacity (`mask` + 1). Word 2 lies below word
  ;; 7, which $resizing read before the CAS, so this cannot trap.
  (func $claimed (param $table i32) (param $mask i32) (result i32)
    (select
      (i32.sub (i32.const 0) (local.get $table))
      (i32.const 1)
      (i32.gt_u
        (i32.shl (i32.add (i32.atomic.rmw.add offset=8 (local.get $table) (i32.const 1))
                          (i32.const 1))
                 (i32.const 2))
        (i32.mul (i32.add (local.get $mask) (i32.const 1)) (i32.const 3)))))

;; For the conditional writes: whether the value of kind `valueKind` (1
  ;; i32, 2 u32, 3 f64) at `at` equals `expected`, as the codec's equals has
  ;; it (f64 bits: -0 is not 0; the caller never passes a NaN).
  (func $valueIs (param $at i32) (param $valueKind i32) (param $expected f64) (result i32)
    (if (result i32) (i32.eq (local.get $valueKind) (i32.const 3))
      (then (i64.eq (i64.load (local.get $at)) (i64.reinterpret_f64 (local.get $expected))))
      (else (f64.eq (call $value (local.get $at) (local.get $valueKind)) (local.get $expected)))))

  ;; For the sets: whether `mode` lets the write replace `slot`, the key's
  ;; slot word (its entry, maybe DELETED), whose value lies at `valueAt`:
  ;; mode 0 always; 1 only if the key is present with the value `expected`
  ;; ($valueIs); 2 only if the key is absent (DELETED); 3 only if the key is
  ;; present; 4 (add) always, as 0. The odd modes need the key present, so
  ;; on an empty slot they forbid the write too.
  (func $mayReplace (param $slot i32) (param $mode i32) (param $valueAt i32)
    (param $valueKind i32) (param $expected f64) (result i32)
    (if (i32.eqz (i32.and (local.get $mode) (i32.const 3))) (then (return (i32.const 1))))
    (if (i32.and (local.get $slot) (i32.const 2))
      (then (return (i32.eq (local.get $mode) (i32.const 2)))))
    (if (i32.eq (local.get $mode) (i32.const 2)) (then (return (i32.const 0))))
    (if (i32.eq (local.get $mode) (i32.const 3)) (then (return (i32.const 1))))
    (call $valueIs (local.get $valueAt) (local.get $valueKind) (local.get $expected)))

  ;; For mode 4 (add): stores at `at`, the value of the caller's unpublished
  ;; entry, `delta` plus the value of kind `valueKind` at `oldAt`, or plus 0
  ;; where `oldAt` is 0 (the key is absent or DELETED), as JavaScript's `+`
  ;; has it (so 0 + -0 is 0). Answers 0, having stored nothing, when an i32
  ;; or u32 sum lies outside its codec's range: the general path then throws
  ;; the codec's error. The entry is published later by the set's CAS
  ;; (pattern b), and is rewritten before each attempt.
  (func $storeSum (param $at i32) (param $oldAt i32) (param $valueKind i32) (param $delta f64)
    (result i32)
    (local $sum f64)
    (local.set $sum
      (f64.add
        (if (result f64) (local.get $oldAt)
          (then
            (if (result f64) (i32.eq (local.get $valueKind) (i32.const 3))
              (then (f64.load (local.get $oldAt)))
              (else
                (if (result f64) (i32.eq (local.get $valueKind) (i32.const 1))
                  (then (f64.convert_i32_s (i32.load (local.get $oldAt))))
                  (else (f64.convert_i32_u (i32.load (local.get $oldAt))))))))
          (else (f64.const 0)))
        (local.get $delta)))
    (if (i32.eq (local.get $valueKind) (i32.const 3))
      (then (f64.store (local.get $at) (local.get $sum)) (return (i32.const 1))))
    (if (i32.eq (local.get $valueKind) (i32.const 1))
      (then
        (if (i32.or (f64.lt (local.get $sum) (f64.const -2147483648))
                    (f64.gt (local.get $sum) (f64.const 2147483647)))
          (then (return (i32.const 0))))
        (i32.store (local.get $at) (i32.trunc_f64_s (local.get $sum)))
        (return (i32.const 1))))
    (if (i32.or (f64.lt (local.get $sum) (f64.const 0))
                (f64.gt (local.get $sum) (f64.const 4294967295)))
      (then (return (i32.const 0))))
    (i32.store (local.get $at) (i32.trunc_f64_u (local.get $sum)))
    (i32.const 1))

  ;; For the sets: the word that replaces the key's slot word `slot`: the new
  ;; `entry`, or, for a delete (`entry` 0), the same entry tagged DELETED (a
  ;; deleted key keeps its slot and its entry, as in hashmap.ts #remove).
  (func $replacement (param $slot i32) (param $entry i32) (result i32)
    (select (local.get $entry) (i32.or (local.get $slot) (i32.const 2)) (local.get $entry)))

  ;; HashMap.set of an i32 or u32 key (hashmap.ts #writeInKernel): publishes
  ;; `entry`, a new block the caller has filled with the key at byte `keyAt`
  ;; (0, or 4 after a value length) and the value, in the root
  ;; table, as #tryWrite and #claim do. Writes nothing and answers 0 (take the
  ;; general path) when the root table has a next table or a retirement under
  ;; way, on a frozen slot, or on a full probe. Otherwise it answers:
  ;; - the replaced slot word (an entry pointer with its tags, >= 8, never
  ;;   COPIED): that entry is now the caller's alone, to read and then
  ;;   retire;
  ;; - 1: the key was new and took an empty slot;
  ;; - minus the table's address: the same, and the table's claimed slots
  ;;   passed 3/4 of its capacity, so the caller also starts a resize;
  ;; - 2: `mode` forbade the write ($mayReplace; a new key needs mode 0, 2
  ;;   or 4), so nothing was written.
  ;; Mode 4 (add) writes whatever the key holds, with `expected` as the delta:
  ;; before each CAS it stores in `entry` the key's value plus the delta
  ;; ($storeSum), and answers 0 where the sum is out of range.
  ;; With `entry` 0 the write is a delete: the key's slot word gets the
  ;; DELETED tag instead of a new entry, under mode 1 or 3 (which find a
  ;; deleted or absent key absent, and answer 2). The answer is then the
  ;; slot word before the delete; its entry stays in the slot, so the caller
  ;; retires nothing.
  ;; The values of other entries lie at byte `valueAt` and are of kind
  ;; `valueKind`, which only modes 1 and 4 read. A new key adds 1 to the table's
  ;; claimed count ($claimed). The map's size changes in the caller's size
  ;; stripe, the word at byte `stripeAt`: +1 for a new key or a write over a
  ;; DELETED slot, -1 for a delete, each added right after the CAS, with no
  ;; call or loop in between (where V8 could stop a terminated worker). A
  ;; trap means that no slot was written.
  (func (export "hashmapSetInt")
    (param $header i32) (param $key i32) (param $keyAt i32) (param $entry i32)
    (param $mode i32) (param $valueAt i32) (param $valueKind i32) (param $expected f64)
    (param $stripeAt i32) (result i32)
    (local $table i32) (local $slots i32) (local $mask i32) (local $i i32) (local $n i32)
    (local $at i32) (local $slot i32) (local $seen i32) (local $result i32) (local $delta i32)
    (local $pinAt i32)
    (if (i32.eqz (call $joined)) (then (return (i32.const 0))))
    ;; Touched first, so that a stripe this instance cannot reach yet traps
    ;; before any CAS: a trap must mean that nothing was written.
    (drop (i32.atomic.load (local.get $stripeAt)))
    (local.set $pinAt (call $pin))
    (local.set $table (i32.atomic.load offset=20 (local.get $header)))
    (block $done
      (br_if $done (call $resizing (local.get $table)))
      (local.set $mask (i32.sub (i32.load (local.get $table)) (i32.const 1)))
      (local.set $slots (i32.load offset=4 (local.get $table)))
      (local.set $i (i32.shr_u (call $mix32 (local.get $key)) (i32.clz (local.get $mask))))
      (loop $probe
        (local.set $at (i32.add (local.get $slots) (i32.shl (local.get $i) (i32.const 2))))
        (local.set $slot (i32.atomic.load (local.get $at)))
        (if (i32.eqz (local.get $slot))
          (then
            (if (i32.and (local.get $mode) (i32.const 1))
              (then (local.set $result (i32.const 2)) (br $done)))
            (if (i32.eq (local.get $mode) (i32.const 4))
              (then
                (br_if $done (i32.eqz (call $storeSum (i32.add (local.get $entry) (local.get $valueAt))
                  (i32.const 0) (local.get $valueKind) (local.get $expected))))))
            (br_if $done (call $nearlyFull (local.get $table) (local.get $mask)))
            (local.set $seen
              (i32.atomic.rmw.cmpxchg (local.get $at) (i32.const 0) (local.get $entry)))
            ;; Taken meanwhile, maybe by this key: look at it again.
            (br_if $probe (local.get $seen))
            (drop (i32.atomic.rmw.add (local.get $stripeAt) (i32.const 1)))
            (local.set $result (call $claimed (local.get $table) (local.get $mask)))
            (br $done)))
        ;; FROZEN, or MOVED (an empty slot frozen): the general path copies.
        ;; COPIED too, though only an older table's retirement leaves it in
        ;; the root, and $resizing turned that away: so the entry in an
        ;; answer is never one that another worker may free.
        (br_if $done (i32.and (local.get $slot) (i32.const 5)))
        (if (i32.eq (i32.load (i32.add (i32.and (local.get $slot) (i32.const -8)) (local.get $keyAt)))
                    (local.get $key))
          (then
            (if (i32.eqz (call $mayReplace (local.get $slot) (local.get $mode)
                  (i32.add (i32.and (local.get $slot) (i32.const -8)) (local.get $valueAt))
                  (local.get $valueKind) (local.get $expected)))
              (then (local.set $result (i32.const 2)) (br $done)))
            (if (i32.eq (local.get $mode) (i32.const 4))
              (then
                (br_if $done (i32.eqz (call $storeSum (i32.add (local.get $entry) (local.get $valueAt))
                  (select (i32.const 0)
                          (i32.add (i32.and (local.get $slot) (i32.const -8)) (local.get $valueAt))
                          (i32.and (local.get $slot) (i32.const 2)))
                  (local.get $valueKind) (local.get $expected))))))
            (local.set $seen
              (i32.atomic.rmw.cmpxchg (local.get $at) (local.get $slot)
                (call $replacement (local.get $slot) (local.get $entry))))
            ;; Changed meanwhile (replaced, deleted or frozen): look again.
            (br_if $probe (i32.ne (local.get $seen) (local.get $slot)))
            ;; The size: a delete takes the key off, a write over DELETED adds it.
            (local.set $delta
              (select (i32.const -1) (i32.shr_u (i32.and (local.get $slot) (i32.const 2)) (i32.const 1))
                      (i32.eqz (local.get $entry))))
            (if (local.get $delta)
              (then (drop (i32.atomic.rmw.add (local.get $stripeAt) (local.get $delta)))))
            (local.set $result (local.get $slot))
            (br $done)))
        (local.set $i (i32.and (i32.add (local.get $i) (i32.const 1)) (local.get $mask)))
        (local.set $n (i32.add (local.get $n) (i32.const 1)))
        (br_if $probe (i32.le_u (local.get $n) (local.get $mask)))))
    (call $unpin (local.get $pinAt))
    (local.get $result))

  ;; Whether the entry at `entry` holds another key than the ASCII key given
  ;; as in hashmapGetAscii (0: the same key): its hash and length first, then
  ;; the key's `words` words from byte `keyAt`, the last one masked with
  ;; `lastMask` (an entry's padding is not zeroed). Reads the entry with plain
  ;; loads: the caller holds a pin and got `entry` from an atomic load.
  (func $asciiKeyDiffers
    (param $entry i32) (param $hash i32) (param $length i32) (param $keyAt i32)
    (param $words i32) (param $lastMask i32)
    (param $w0 i32) (param $w1 i32) (param $w2 i32) (param $w3 i32)
    (param $w4 i32) (param $w5 i32) (param $w6 i32) (param $w7 i32) (result i32)
    (local $key i32) (local $diff i32)
    (if (i32.or
          (i32.ne (i32.load (local.get $entry)) (local.get $hash))
          (i32.ne (i32.load offset=4 (local.get $entry)) (local.get $length)))
      (then (return (i32.const 1))))
    (local.set $key (i32.add (local.get $entry) (local.get $keyAt)))
    (block $compared
      (local.set $diff (i32.or (local.get $diff)
        (i32.and (i32.xor (i32.load offset=0 (local.get $key)) (local.get $w0))
                 (select (local.get $lastMask) (i32.const -1)
                         (i32.eq (local.get $words) (i32.const 1))))))
      (br_if $compared (i32.le_u (local.get $words) (i32.const 1)))
      (local.set $diff (i32.or (local.get $diff)
        (i32.and (i32.xor (i32.load offset=4 (local.get $key)) (local.get $w1))
                 (select (local.get $lastMask) (i32.const -1)
                         (i32.eq (local.get $words) (i32.const 2))))))
      (br_if $compared (i32.le_u (local.get $words) (i32.const 2)))
      (local.set $diff (i32.or (local.get $diff)
        (i32.and (i32.xor (i32.load offset=8 (local.get $key)) (local.get $w2))
                 (select (local.get $lastMask) (i32.const -1)
                         (i32.eq (local.get $words) (i32.const 3))))))
      (br_if $compared (i32.le_u (local.get $words) (i32.const 3)))
      (local.set $diff (i32.or (local.get $diff)
        (i32.and (i32.xor (i32.load offset=12 (local.get $key)) (local.get $w3))
                 (select (local.get $lastMask) (i32.const -1)
                         (i32.eq (local.get $words) (i32.const 4))))))
      (br_if $compared (i32.le_u (local.get $words) (i32.const 4)))
      (local.set $diff (i32.or (local.get $diff)
        (i32.and (i32.xor (i32.load offset=16 (local.get $key)) (local.get $w4))
                 (select (local.get $lastMask) (i32.const -1)
                         (i32.eq (local.get $words) (i32.const 5))))))
      (br_if $compared (i32.le_u (local.get $words) (i32.const 5)))
      (local.set $diff (i32.or (local.get $diff)
        (i32.and (i32.xor (i32.load offset=20 (local.get $key)) (local.get $w5))
                 (select (local.get $lastMask) (i32.const -1)
                         (i32.eq (local.get $words) (i32.const 6))))))
      (br_if $compared (i32.le_u (local.get $words) (i32.const 6)))
      (local.set $diff (i32.or (local.get $diff)
        (i32.and (i32.xor (i32.load offset=24 (local.get $key)) (local.get $w6))
                 (select (local.get $lastMask) (i32.const -1)
                         (i32.eq (local.get $words) (i32.const 7))))))
      (br_if $compared (i32.le_u (local.get $words) (i32.const 7)))
      (local.set $diff (i32.or (local.get $diff)
        (i32.and (i32.xor (i32.load offset=28 (local.get $key)) (local.get $w7))
                 (select (local.get $lastMask) (i32.const -1)
                         (i32.eq (local.get $words) (i32.const 8)))))))
    (local.get $diff))

  ;; The gets' answer once their probe of the root `table` met a frozen slot,
  ;; that is, during a resize. As HashMap's #findFrom does, walks the chain of
  ;; tables (T_NEXT, word 3) from `table`: a slot of the key that is not
  ;; frozen is the newest and answers; a frozen one answers unless a later
  ;; table has the key; an empty slot ends the walk; a MOVED slot (frozen and
  ;; empty) or a full probe goes on to the next table. Answers the slot word
  ;; of the key in the newest table that has one, or 0. The key comes as
  ;; hashmapGetAscii takes it, or, with `words` 0, as an int key in `w0` (the
  ;; entry's word 0). Tables in the chain are pattern (b) after the load of
  ;; T_NEXT that reached them; the caller is pinned, so no table or entry
  ;; reached here is freed meanwhile. Off the hot paths: only resizes get here.
  (func $keyInChain
    (param $table i32) (param $hash i32) (param $length i32) (param $keyAt i32)
    (param $words i32) (param $lastMask i32)
    (param $w0 i32) (param $w1 i32) (param $w2 i32) (param $w3 i32)
    (param $w4 i32) (param $w5 i32) (param $w6 i32) (param $w7 i32) (result i32)
    (local $slots i32) (local $mask i32) (local $i i32) (local $n i32)
    (local $slot i32) (local $entry i32) (local $hit i32)
    (block $walked
      (loop $tables
        (local.set $mask (i32.sub (i32.load (local.get $table)) (i32.const 1)))
        (local.set $slots (i32.load offset=4 (local.get $table)))
        (local.set $i (i32.shr_u (local.get $hash) (i32.clz (local.get $mask))))
        (local.set $n (i32.const 0))
        (block $notHere
          (loop $probe
            (local.set $slot
              (i32.atomic.load (i32.add (local.get $slots) (i32.shl (local.get $i) (i32.const 2)))))
            (br_if $walked (i32.eqz (local.get $slot)))
            (br_if $notHere (i32.eq (local.get $slot) (i32.const 1)))
            (local.set $entry (i32.and (local.get $slot) (i32.const -8)))
            (if (if (result i32) (local.get $words)
                  (then (i32.eqz (call $asciiKeyDiffers
                    (local.get $entry) (local.get $hash) (local.get $length) (local.get $keyAt)
                    (local.get $words) (local.get $lastMask)
                    (local.get $w0) (local.get $w1) (local.get $w2) (local.get $w3)
                    (local.get $w4) (local.get $w5) (local.get $w6) (local.get $w7))))
                  (else (i32.eq (i32.load (local.get $entry)) (local.get $w0))))
              (then
                (local.set $hit (local.get $slot))
                (br_if $walked (i32.eqz (i32.and (local.get $slot) (i32.const 1))))
                (br $notHere)))
            (local.set $i (i32.and (i32.add (local.get $i) (i32.const 1)) (local.get $mask)))
            (local.set $n (i32.add (local.get $n) (i32.const 1)))
            (br_if $probe (i32.le_u (local.get $n) (local.get $mask)))))
        (local.set $table (i32.atomic.load offset=12 (local.get $table)))
        (br_if $tables (local.get $table))))
    (local.get $hit))

  ;; The get's answer from the slot word $keyInChain found: ABSENT for none or
  ;; a deleted key, else the value of kind `valueKind` (1 to 3) after the key
  ;; of `length` bytes at byte `keyAt` of the entry ($asciiValueAt).
  (func $chainValue (param $hit i32) (param $keyAt i32) (param $length i32)
    (param $valueKind i32) (result f64)
    (if (result f64) (i32.or (i32.eqz (local.get $hit)) (i32.and (local.get $hit) (i32.const 2)))
      (then (global.get $ABSENT))
      (else (call $value
        (call $asciiValueAt (i32.and (local.get $hit) (i32.const -8)) (local.get $keyAt)
                            (local.get $length) (local.get $valueKind))
        (local.get $valueKind)))))

  ;; HashMap's lookup of a string key of 1 to 32 ASCII bytes for the reads
  ;; before a conditional write, and for `get` and `has` in maps whose values
  ;; JavaScript decodes (hashmap.ts #getAsciiKey; `get` and `has` of i32, u32
  ;; and f64 values take hashmapGetKeyInSlot): `hash` and `length` as the entry stores
  ;; them, and the key's bytes as eight little-endian words, zero past
  ;; `length` (words past the key's are ignored). An entry is [hash, length,
  ;; ..., key bytes, value]; the key starts at byte `keyAt` and the value
  ;; follows it, aligned to 4 (valueKind 1 i32, 2 u32) or 8 (3 f64). With
  ;; valueKind 0 the answer is the entry's byte address instead, and the pin
  ;; is kept: the caller reads the value and then unpins
  ;; (kernelUnpin in _heap_hooks.ts). A frozen slot sends the lookup down the chain
  ;; of tables ($keyInChain) and a full probe answers SLOW, as in
  ;; hashmapGetInt; so does the empty key (length 0), which the caller never
  ;; passes.
  (func (export "hashmapGetAscii")
    (param $header i32) (param $hash i32) (param $length i32) (param $keyAt i32)
    (param $w0 i32) (param $w1 i32) (param $w2 i32) (param $w3 i32)
    (param $w4 i32) (param $w5 i32) (param $w6 i32) (param $w7 i32)
    (param $valueKind i32) (result f64)
    (local $table i32) (local $slots i32) (local $mask i32) (local $i i32) (local $n i32)
    (local $slot i32) (local $entry i32) (local $result f64)
    (local $words i32) (local $lastMask i32) (local $pinAt i32)
    (if (i32.or (i32.eqz (local.get $length)) (i32.eqz (call $joined)))
      (then (return (global.get $SLOW))))
    (local.set $words (i32.shr_u (i32.add (local.get $length) (i32.const 3)) (i32.const 2)))
    ;; The last word's bytes past the key are not compared (an entry's padding
    ;; is not zeroed).
    (local.set $lastMask
      (if (result i32) (i32.and (local.get $length) (i32.const 3))
        (then (i32.sub
          (i32.shl (i32.const 1) (i32.shl (i32.and (local.get $length) (i32.const 3)) (i32.const 3)))
          (i32.const 1)))
        (else (i32.const -1))))
    (local.set $pinAt (call $pinToRead))
    (local.set $table (i32.atomic.load offset=20 (local.get $header)))
    (local.set $mask (i32.sub (i32.load (local.get $table)) (i32.const 1)))
    (local.set $slots (i32.load offset=4 (local.get $table)))
    (local.set $i (i32.shr_u (local.get $hash) (i32.clz (local.get $mask))))
    (local.set $result (global.get $SLOW))
    (block $done
      (loop $probe
        (local.set $slot
          (i32.atomic.load (i32.add (local.get $slots) (i32.shl (local.get $i) (i32.const 2)))))
        (if (i32.eqz (local.get $slot))
          (then (local.set $result (global.get $ABSENT)) (br $done)))
        (if (i32.and (local.get $slot) (i32.const 1))
          (then
            (local.set $slot (call $keyInChain
              (local.get $table) (local.get $hash) (local.get $length) (local.get $keyAt)
              (local.get $words) (local.get $lastMask)
              (local.get $w0) (local.get $w1) (local.get $w2) (local.get $w3)
              (local.get $w4) (local.get $w5) (local.get $w6) (local.get $w7)))
            (if (i32.or (i32.eqz (local.get $slot)) (i32.and (local.get $slot) (i32.const 2)))
              (then (local.set $result (global.get $ABSENT)) (br $done)))
            (if (i32.eqz (local.get $valueKind))
              ;; Still pinned, as below: the caller reads the entry, then unpins.
              (then (return (f64.convert_i32_u (i32.and (local.get $slot) (i32.const -8))))))
            (local.set $result (call $chainValue (local.get $slot) (local.get $keyAt)
                                                 (local.get $length) (local.get $valueKind)))
            (br $done)))
        (local.set $entry (i32.and (local.get $slot) (i32.const -8)))
        (if (i32.eqz (call $asciiKeyDiffers
              (local.get $entry) (local.get $hash) (local.get $length) (local.get $keyAt)
              (local.get $words) (local.get $lastMask)
              (local.get $w0) (local.get $w1) (local.get $w2) (local.get $w3)
              (local.get $w4) (local.get $w5) (local.get $w6) (local.get $w7)))
          (then
            (if (i32.and (local.get $slot) (i32.const 2))
              (then (local.set $result (global.get $ABSENT)) (br $done)))
            (if (i32.eqz (local.get $valueKind))
              ;; Still pinned: the caller reads the entry, then unpins.
              (then (return (f64.convert_i32_u (local.get $entry)))))
            (local.set $result
              (call $value
                (call $asciiValueAt (local.get $entry) (local.get $keyAt) (local.get $length)
                                    (local.get $valueKind))
                (local.get $valueKind)))
            (br $done)))
        (local.set $i (i32.and (i32.add (local.get $i) (i32.const 1)) (local.get $mask)))
        (local.set $n (i32.add (local.get $n) (i32.const 1)))
        (br_if $probe (i32.le_u (local.get $n) (local.get $mask)))))
    (call $unpin (local.get $pinAt))
    (local.get $result))

  ;; HashMap.get for a string key of 1 to 32 ASCII bytes, in a map whose
  ;; values the kernel reads (header word 2, H_VALUE_CODEC: 1 i32, 2 u32,
  ;; 3 f64): as hashmapGetAscii, but the key comes in the calling worker's
  ;; own registry slot, which the caller wrote just before the call: the
  ;; words after its epoch word hold [hash, length, the key's bytes as eight
  ;; little-endian words, zero past `length`] (S_KERNEL_KEY, _layout.ts).
  ;; An entry of such a map is [hash, length, key bytes, value], the key at
  ;; byte 8 and the value after it, aligned to 4 (i32, u32) or 8 (f64).
  ;; Written out, with no calls and one parameter, for the reason given at
  ;; hashmapGetInt. Against hashmapGetAscii's thirteen parameters and five
  ;; calls, a get of 16-byte keys took 3-11% less time, in cache and over 1M
  ;; keys, in one process alternating the two. The words share the epoch
  ;; word's cache line, which the pin writes anyway, and only this worker
  ;; touches them: a read still writes no shared memory but its own slot.
  (func (export "hashmapGetKeyInSlot") (param $header i32) (result f64)
    (local $pinAt i32) (local $key i32) (local $hash i32) (local $length i32)
    (local $fullBytes i32) (local $lastMask i32) (local $diff i32) (local $at i32)
    (local $table i32) (local $slots i32) (local $mask i32) (local $i i32) (local $n i32)
    (local $slot i32) (local $entry i32) (local $result f64) (local $valueKind i32)
    (local $f64 f64) (local $epoch i32)
    (local.set $pinAt (global.get $pinWord))
    (if (i32.eqz (local.get $pinAt)) (then (return (global.get $SLOW))))
    ;; The caller's plain stores of the key came before this call in this
    ;; thread: plain loads see them.
    (local.set $key (local.get $pinAt))
    (local.set $hash (i32.load offset=8 (local.get $key)))
    (local.set $length (i32.load offset=12 (local.get $key)))
    (if (i32.gt_u (i32.sub (local.get $length) (i32.const 1)) (i32.const 31))
      (then (return (global.get $SLOW))))
    (local.set $fullBytes (i32.and (local.get $length) (i32.const -4)))
    ;; The last word's bytes past the key are not compared (an entry's padding
    ;; is not zeroed); 0 when the key fills its last word.
    (local.set $lastMask
      (i32.sub
        (i32.shl (i32.const 1) (i32.shl (i32.and (local.get $length) (i32.const 3)) (i32.const 3)))
        (i32.const 1)))
    ;; As in hashmapGetInt: a read pin, or the worker's own pin, else SLOW.
    (if (global.get $readPins)
      (then
        (local.set $epoch (i32.atomic.load (global.get $EPOCH_AT)))
        (if (i32.ne (i32.atomic.load (local.get $pinAt)) (local.get $epoch))
          (then (i32.atomic.store (local.get $pinAt) (local.get $epoch)))))
      (else
        (if (i32.eqz (i32.atomic.load (local.get $pinAt)))
          (then (return (global.get $SLOW))))))
    (local.set $table (i32.atomic.load offset=20 (local.get $header)))
    (local.set $mask (i32.sub (i32.load (local.get $table)) (i32.const 1)))
    (local.set $slots (i32.load offset=4 (local.get $table)))
    (local.set $i (i32.shr_u (local.get $hash) (i32.clz (local.get $mask))))
    (local.set $result (global.get $SLOW))
    (block $done
      (loop $probe
        (local.set $slot
          (i32.atomic.load (i32.add (local.get $slots) (i32.shl (local.get $i) (i32.const 2)))))
        (if (i32.eqz (local.get $slot))
          (then (local.set $result (global.get $ABSENT)) (br $done)))
        (if (i32.and (local.get $slot) (i32.const 1))
          (then
            ;; The key's words from this worker's slot, in $asciiKeyDiffers's
            ;; terms (a last mask of -1 when the key fills its last word).
            (local.set $result (call $chainValue
              (call $keyInChain
                (local.get $table) (local.get $hash) (local.get $length) (i32.const 8)
                (i32.shr_u (i32.add (local.get $length) (i32.const 3)) (i32.const 2))
                (select (local.get $lastMask) (i32.const -1) (local.get $lastMask))
                (i32.load offset=16 (local.get $key)) (i32.load offset=20 (local.get $key))
                (i32.load offset=24 (local.get $key)) (i32.load offset=28 (local.get $key))
                (i32.load offset=32 (local.get $key)) (i32.load offset=36 (local.get $key))
                (i32.load offset=40 (local.get $key)) (i32.load offset=44 (local.get $key)))
              (i32.const 8) (local.get $length) (i32.load offset=8 (local.get $header))))
            (br $done)))
        (local.set $entry (i32.and (local.get $slot) (i32.const -8)))
        (if (i32.and
              (i32.eq (i32.load (local.get $entry)) (local.get $hash))
              (i32.eq (i32.load offset=4 (local.get $entry)) (local.get $length)))
          (then
            (local.set $diff (i32.const 0))
            (local.set $at (i32.const 0))
            (block $compared
              (loop $word
                (br_if $compared (i32.ge_u (local.get $at) (local.get $fullBytes)))
                (local.set $diff (i32.or (local.get $diff)
                  (i32.xor (i32.load offset=8 (i32.add (local.get $entry) (local.get $at)))
                           (i32.load offset=16 (i32.add (local.get $key) (local.get $at))))))
                (local.set $at (i32.add (local.get $at) (i32.const 4)))
                (br $word)))
            (if (local.get $lastMask)
              (then (local.set $diff (i32.or (local.get $diff)
                (i32.and (local.get $lastMask)
                  (i32.xor (i32.load offset=8 (i32.add (local.get $entry) (local.get $at)))
                           (i32.load offset=16 (i32.add (local.get $key) (local.get $at)))))))))
            (if (i32.eqz (local.get $diff))
              (then
                (if (i32.and (local.get $slot) (i32.const 2))
                  (then (local.set $result (global.get $ABSENT)) (br $done)))
                ;; The value: at the key's end, entry + 8 + length, aligned.
                (local.set $at (i32.add (i32.add (local.get $entry) (i32.const 8)) (local.get $length)))
                (local.set $valueKind (i32.load offset=8 (local.get $header)))
                (local.set $result
                  (if (result f64) (i32.eq (local.get $valueKind) (i32.const 1))
                    (then (f64.convert_i32_s
                      (i32.load (i32.and (i32.add (local.get $at) (i32.const 3)) (i32.const -4)))))
                    (else (if (result f64) (i32.eq (local.get $valueKind) (i32.const 2))
                      (then (f64.convert_i32_u
                        (i32.load (i32.and (i32.add (local.get $at) (i32.const 3)) (i32.const -4)))))
                      (else
                        (local.set $f64
                          (f64.load (i32.and (i32.add (local.get $at) (i32.const 7)) (i32.const -8))))
                        (select (global.get $SLOW) (local.get $f64)
                          (i32.or (f64.eq (local.get $f64) (global.get $SLOW))
                                  (f64.eq (local.get $f64) (global.get $ABSENT)))))))))
                (br $done)))))
        (local.set $i (i32.and (i32.add (local.get $i) (i32.const 1)) (local.get $mask)))
        (local.set $n (i32.add (local.get $n) (i32.const 1)))
        (br_if $probe (i32.le_u (local.get $n) (local.get $mask)))))
    (local.get $result))

  ;; HashMap.set for a string key of 1 to 32 ASCII bytes (hashmap.ts
  ;; #writeInKernel), given as in hashmapGetAscii: publishes `entry`, a new
  ;; block the caller has filled, in the root table, with the modes, the
  ;; answers, the size stripe and the bail-outs of hashmapSetInt (the empty key
  ;; bails out too).
  ;; Values lie after the key as in hashmapGetAscii.
  (func (export "hashmapSetAscii")
    (param $header i32) (param $hash i32) (param $length i32) (param $keyAt i32)
    (param $w0 i32) (param $w1 i32) (param $w2 i32) (param $w3 i32)
    (param $w4 i32) (param $w5 i32) (param $w6 i32) (param $w7 i32)
    (param $entry i32) (param $mode i32) (param $valueKind i32) (param $expected f64)
    (param $stripeAt i32) (result i32)
    (local $table i32) (local $slots i32) (local $mask i32) (local $i i32) (local $n i32)
    (local $at i32) (local $slot i32) (local $seen i32) (local $result i32) (local $delta i32)
    (local $words i32) (local $lastMask i32) (local $pinAt i32)
    (if (i32.or (i32.eqz (local.get $length)) (i32.eqz (call $joined)))
      (then (return (i32.const 0))))
    ;; As in hashmapSetInt: the stripe traps, if at all, before any CAS.
    (drop (i32.atomic.load (local.get $stripeAt)))
    (local.set $words (i32.shr_u (i32.add (local.get $length) (i32.const 3)) (i32.const 2)))
    (local.set $lastMask
      (if (result i32) (i32.and (local.get $length) (i32.const 3))
        (then (i32.sub
          (i32.shl (i32.const 1) (i32.shl (i32.and (local.get $length) (i32.const 3)) (i32.const 3)))
          (i32.const 1)))
        (else (i32.const -1))))
    (local.set $pinAt (call $pin))
    (local.set $table (i32.atomic.load offset=20 (local.get $header)))
    (block $done
      (br_if $done (call $resizing (local.get $table)))
      (local.set $mask (i32.sub (i32.load (local.get $table)) (i32.const 1)))
      (local.set $slots (i32.load offset=4 (local.get $table)))
      (local.set $i (i32.shr_u (local.get $hash) (i32.clz (local.get $mask))))
      (loop $probe
        (local.set $at (i32.add (local.get $slots) (i32.shl (local.get $i) (i32.const 2))))
        (local.set $slot (i32.atomic.load (local.get $at)))
        (if (i32.eqz (local.get $slot))
          (then
            (if (i32.and (local.get $mode) (i32.const 1))
              (then (local.set $result (i32.const 2)) (br $done)))
            (if (i32.eq (local.get $mode) (i32.const 4))
              (then
                (br_if $done (i32.eqz (call $storeSum
                  (call $asciiValueAt (local.get $entry) (local.get $keyAt) (local.get $length)
                                      (local.get $valueKind))
                  (i32.const 0) (local.get $valueKind) (local.get $expected))))))
            (br_if $done (call $nearlyFull (local.get $table) (local.get $mask)))
            (local.set $seen
              (i32.atomic.rmw.cmpxchg (local.get $at) (i32.const 0) (local.get $entry)))
            (br_if $probe (local.get $seen))
            (drop (i32.atomic.rmw.add (local.get $stripeAt) (i32.const 1)))
            (local.set $result (call $claimed (local.get $table) (local.get $mask)))
            (br $done)))
        (br_if $done (i32.and (local.get $slot) (i32.const 5)))
        (if (i32.eqz (call $asciiKeyDiffers
              (i32.and (local.get $slot) (i32.const -8)) (local.get $hash) (local.get $length)
              (local.get $keyAt) (local.get $words) (local.get $lastMask)
              (local.get $w0) (local.get $w1) (local.get $w2) (local.get $w3)
              (local.get $w4) (local.get $w5) (local.get $w6) (local.get $w7)))
          (then
            (if (i32.eqz (call $mayReplace (local.get $slot) (local.get $mode)
                  (call $asciiValueAt (i32.and (local.get $slot) (i32.const -8))
                                      (local.get $keyAt) (local.get $length) (local.get $valueKind))
                  (local.get $valueKind) (local.get $expected)))
              (then (local.set $result (i32.const 2)) (br $done)))
            (if (i32.eq (local.get $mode) (i32.const 4))
              (then
                (br_if $done (i32.eqz (call $storeSum
                  (call $asciiValueAt (local.get $entry) (local.get $keyAt) (local.get $length)
                                      (local.get $valueKind))
                  (select (i32.const 0)
                          (call $asciiValueAt (i32.and (local.get $slot) (i32.const -8))
                                              (local.get $keyAt) (local.get $length)
                                              (local.get $valueKind))
                          (i32.and (local.get $slot) (i32.const 2)))
                  (local.get $valueKind) (local.get $expected))))))
            (local.set $seen
              (i32.atomic.rmw.cmpxchg (local.get $at) (local.get $slot)
                (call $replacement (local.get $slot) (local.get $entry))))
            (br_if $probe (i32.ne (local.get $seen) (local.get $slot)))
            (local.set $delta
              (select (i32.const -1) (i32.shr_u (i32.and (local.get $slot) (i32.const 2)) (i32.const 1))
                      (i32.eqz (local.get $entry))))
            (if (local.get $delta)
              (then (drop (i32.atomic.rmw.add (local.get $stripeAt) (local.get $delta)))))
            (local.set $result (local.get $slot))
            (br $done)))
        (local.set $i (i32.and (i32.add (local.get $i) (i32.const 1)) (local.get $mask)))
        (local.set $n (i32.add (local.get $n) (i32.const 1)))
        (br_if $probe (i32.le_u (local.get $n) (local.get $mask)))))
    (call $unpin (local.get $pinAt))
    (local.get $result))

  ;; For HashMap's JavaScript write paths: a CAS of the word at byte `at`
  ;; from `expected` to `replacement` that, when it succeeds, adds `delta`
  ;; to the word at byte `countAt` (the caller's size stripe) in the same
  ;; call. Answers the word the CAS saw, as Atomics.compareExchange does.
  ;; Why here: in JavaScript each Atomics call is a point where V8 takes a
  ;; termination, and a Node worker killed in a loop of a CAS and a count
  ;; stopped between the two in 132 of 300 kills, which left the map's size
  ;; one off; WebAssembly stops only at a call or a loop's back edge, and
  ;; there is neither between the two. The count word is loaded first, so
  ;; that a trap (memory this instance has not been told about yet) comes
  ;; before either write. Needs no pin: the caller holds one.
  (func (export "casCounted")
    (param $at i32) (param $expected i32) (param $replacement i32)
    (param $countAt i32) (param $delta i32) (result i32)
    (local $seen i32)
    (drop (i32.atomic.load (local.get $countAt)))
    (local.set $seen
      (i32.atomic.rmw.cmpxchg (local.get $at) (local.get $expected) (local.get $replacement)))
    (if (i32.eq (local.get $seen) (local.get $expected))
      (then (drop (i32.atomic.rmw.add (local.get $countAt) (local.get $delta)))))
    (local.get $seen))
)
