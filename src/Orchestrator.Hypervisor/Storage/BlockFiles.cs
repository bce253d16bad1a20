using System.Globalization;
using Orchestrator.Hypervisor.Qemu;

namespace Orchestrator.Hypervisor.Storage;

/// <summary>
/// The protocol layer under a disk's format node: a host file (<c>dir</c> pools) or an image in a Ceph pool (<c>rbd</c>
/// pools, through QEMU's own rbd driver, as Proxmox and OpenStack use it). A pool names its disks with QEMU's filename
/// syntax (a path, or <c>rbd:POOL/IMAGE:conf=FILE[:id=USER]</c>, made from ids and operator settings only), which qemu-img
/// and blockdev-snapshot-sync take as they are; the -blockdev and blockdev-add forms are made here from it.
/// </summary>
public static class BlockFiles
{
    public const string RbdPrefix = "rbd:";

    /// <summary>The file node's options for -blockdev, comma-escaped, without node-name.</summary>
    public static string CommandLineOptions(string driveFile, string prefix = "")
    {
        if (Rbd.TryParse(driveFile) is not { } rbd)
        {
            return $"{prefix}driver=file,{prefix}filename={QemuDriver.EscapeOption(driveFile)}";
        }

        var options = $"{prefix}driver=rbd,{prefix}pool={rbd.Pool},{prefix}image={rbd.Image},{prefix}conf={QemuDriver.EscapeOption(rbd.Conf)}";
        return rbd.User is null ? options : options + $",{prefix}user={rbd.User}";
    }

    /// <summary>The file node as QMP's blockdev-add takes it.</summary>
    public static Dictionary<string, object> QmpOptions(string driveFile)
    {
        if (Rbd.TryParse(driveFile) is not { } rbd)
        {
            return new Dictionary<string, object> { ["driver"] = "file", ["filename"] = driveFile };
        }

        var options = new Dictionary<string, object> { ["driver"] = "rbd", ["pool"] = rbd.Pool, ["image"] = rbd.Image, ["conf"] = rbd.Conf };
        if (rbd.User is not null)
        {
            options["user"] = rbd.User;
        }

        return options;
    }

    /// <summary>
    /// Whether QEMU's report of a node's file (a path, or a <c>json:{…}</c> for protocol drivers) is the disk
    /// <paramref name="driveFile"/> names.
    /// </summary>
    public static bool SameFile(string? reported, string driveFile)
    {
        if (reported is null)
        {
            return false;
        }

        if (Rbd.TryParse(driveFile) is not { } rbd)
        {
            return reported == driveFile;
        }

        return reported == driveFile
            || (reported.Contains("\"driver\": \"rbd\"", StringComparison.Ordinal)
                && reported.Contains($"\"pool\": \"{rbd.Pool}\"", StringComparison.Ordinal)
                && reported.Contains($"\"image\": \"{rbd.Image}\"", StringComparison.Ordinal));
    }

    /// <summary>An rbd image as a pool names it.</summary>
    public sealed record Rbd(string Pool, string Image, string Conf, string? User)
    {
        public override string ToString()
        {
            var name = $"{RbdPrefix}{Pool}/{Image}:conf={Conf}";
            return User is null ? name : name + ":id=" + User;
        }

        public static Rbd? TryParse(string driveFile)
        {
            if (!driveFile.StartsWith(RbdPrefix, StringComparison.Ordinal))
            {
                return null;
            }

            // Our own syntax back: rbd:POOL/IMAGE:conf=FILE[:id=USER]; the parts were checked to hold no ':' or ','.
            var parts = driveFile[RbdPrefix.Length..].Split(':');
            var slash = parts[0].IndexOf('/', StringComparison.Ordinal);
            string? conf = null, user = null;
            foreach (var part in parts.Skip(1))
            {
                if (part.StartsWith("conf=", StringComparison.Ordinal))
                {
                    conf = part["conf=".Length..];
                }
                else if (part.StartsWith("id=", StringComparison.Ordinal))
                {
                    user = part["id=".Length..];
                }
            }

            return slash > 0 && conf is not null
                ? new Rbd(parts[0][..slash], parts[0][(slash + 1)..], conf, user)
                : throw new HypervisorException(string.Create(CultureInfo.InvariantCulture, $"'{driveFile}' is not an rbd disk name"));
        }
    }
}
