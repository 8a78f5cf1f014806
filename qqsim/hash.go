package qqsim

// Hash33 is the ptqrtoken of a qrsig cookie value: e = 0; for each character c,
// e += (e << 5) + c; the result is e & 0x7fffffff.
func Hash33(s string) int64 {
	var e uint64
	for _, c := range s {
		e += (e << 5) + uint64(c)
	}
	return int64(e & 0x7fffffff)
}

// Hash is the hash that get_user_friends2 and get_group_name_list_mask2 carry, from
// the account's QQ number and ptwebqq (seed 004): sixteen upper-case hex digits.
func Hash(uin int64, ptwebqq string) string {
	var n [4]int64
	i := 0
	for _, c := range ptwebqq {
		n[i%4] ^= int64(c)
		i++
	}
	const salt = "ECOK"
	var v [4]int64
	v[0] = uin>>24&255 ^ int64(salt[0])
	v[1] = uin>>16&255 ^ int64(salt[1])
	v[2] = uin>>8&255 ^ int64(salt[2])
	v[3] = uin&255 ^ int64(salt[3])
	const hexDigits = "0123456789ABCDEF"
	out := make([]byte, 0, 16)
	for i := range 8 {
		x := n[i>>1]
		if i%2 == 1 {
			x = v[i>>1]
		}
		out = append(out, hexDigits[x>>4&15], hexDigits[x&15])
	}
	return string(out)
}
