// A VM's cloud-init NoCloud seed: meta-data and user-data on an ISO 9660 volume labelled "cidata".
using System.Globalization;
using System.Text;
using Orchestrator.Domain;

namespace Orchestrator.Hypervisor.Qemu;

public static class NoCloudSeed
{
    /// <summary>The volume label cloud-init's NoCloud datasource looks for.</summary>
    public const string VolumeId = "cidata";

    /// <summary>
    /// The seed image for <paramref name="vmId"/>: meta-data with the instance id (the VM's id, so cloud-init runs its
    /// per-instance modules once per VM), hostname and keys; user-data byte for byte, whatever it holds.
    /// </summary>
    public static byte[] Build(VmId vmId, GuestSeed seed, DateTimeOffset now) =>
        Iso9660Writer.Build(VolumeId, [("meta-data", MetaData(vmId, seed)), ("user-data", seed.UserData)], now);

    /// <summary>
    /// YAML, every value double-quoted and escaped: the hostname and keys are validated already (no line breaks), and a
    /// key's comment with a quote or backslash still cannot end its string early.
    /// </summary>
    public static byte[] MetaData(VmId vmId, GuestSeed seed)
    {
        var yaml = new StringBuilder();
        yaml.Append(CultureInfo.InvariantCulture, $"instance-id: {Quoted(vmId.Compact)}\n");
        yaml.Append(CultureInfo.InvariantCulture, $"local-hostname: {Quoted(seed.Hostname)}\n");
        if (seed.SshKeys.Count > 0)
        {
            yaml.Append("public-keys:\n");
            foreach (var key in seed.SshKeys)
            {
                yaml.Append(CultureInfo.InvariantCulture, $"  - {Quoted(key)}\n");
            }
        }

        return Encoding.UTF8.GetBytes(yaml.ToString());
    }

    private static string Quoted(string value)
    {
        var quoted = new StringBuilder(value.Length + 2).Append('"');
        foreach (var c in value)
        {
            _ = c switch
            {
                '"' => quoted.Append("\\\""),
                '\\' => quoted.Append("\\\\"),
                _ when char.IsControl(c) => quoted.Append(CultureInfo.InvariantCulture, $"\\u{(int)c:x4}"),
                _ => quoted.Append(c),
            };
        }

        return quoted.Append('"').ToString();
    }
}
