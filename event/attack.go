package event

// techniques names the MITRE ATT&CK for ICS techniques that tapwatch's
// detectors report, for people reading alerts (tapwatch tail --format
// text, the demo). Rules in a policy may give any id; those not listed
// here are shown by id alone.
var techniques = map[string]string{
	"T0804": "Block Reporting Message",
	"T0806": "Brute Force I/O",
	"T0814": "Denial of Service",
	"T0815": "Denial of View",
	"T0816": "Device Restart/Shutdown",
	"T0827": "Loss of Control",
	"T0829": "Loss of View",
	"T0830": "Adversary-in-the-Middle",
	"T0831": "Manipulation of Control",
	"T0832": "Manipulation of View",
	"T0836": "Modify Parameter",
	"T0840": "Network Connection Enumeration",
	"T0843": "Program Download",
	"T0846": "Remote System Discovery",
	"T0848": "Rogue Master",
	"T0855": "Unauthorized Command Message",
	"T0856": "Spoof Reporting Message",
	"T0858": "Change Operating Mode",
	"T0861": "Point & Tag Identification",
	"T0864": "Transient Cyber Asset",
	"T0867": "Lateral Tool Transfer",
	"T0869": "Standard Application Layer Protocol",
	"T0872": "Indicator Removal on Host",
	"T0881": "Service Stop",
	"T0882": "Theft of Operational Information",
	"T0883": "Internet Accessible Device",
	"T0885": "Commonly Used Port",
	"T0886": "Remote Services",
	"T0888": "Remote System Information Discovery",
}

// TechniqueName is the name of an ATT&CK for ICS technique, or "" when
// tapwatch does not know the id.
func TechniqueName(id string) string { return techniques[id] }
