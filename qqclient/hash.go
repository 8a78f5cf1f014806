package qqclient

// Hash computes the "hash" parameter of get_user_friends2 and get_group_name_list_mask2
// from the account's uin and ptwebqq (seed 004): 16 upper-case hexadecimal characters.
func Hash(uin int64, ptwebqq string) string {
	var n [4]uint32
	i := 0
	for _, r := range ptwebqq {
		n[i%4] ^= uint32(r)
		i++
	}
	salt := [4]uint32{'E', 'C', 'O', 'K'}
	var v [4]uint32
	v[0] = uint32(uin>>24)&0xff ^ salt[0]
	v[1] = uint32(uin>>16)&0xff ^ salt[1]
	v[2] = uint32(uin>>8)&0xff ^ salt[2]
	v[3] = uint32(uin)&0xff ^ salt[3]
	const hexDigits = "0123456789ABCDEF"
	out := make([]byte, 0, 16)
	for j := range 8 {
		var b uint32
		if j%2 == 0 {
			b = n[j>>1]
		} else {
			b = v[j>>1]
		}
		out = append(out, hexDigits[(b>>4)&15], hexDigits[b&15])
	}
	return string(out)
}

// Hash33 computes ptqrtoken from the qrsig cookie: e = 0; for each character c,
// e += (e << 5) + c; the result is e & 0x7fffffff (JavaScript's 32-bit arithmetic).
func Hash33(s string) int64 {
	var e uint32
	for _, r := range s {
		e += e<<5 + uint32(r)
	}
	return int64(e & 0x7fffffff)
}
