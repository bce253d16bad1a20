// Builds a VM's initrd: the image's initrd plus a small cpio archive carrying the VM's name for the guest.
using System.Text;

namespace Orchestrator.Hypervisor.Qemu;

public static class GuestInitrd
{
    /// <summary>Where the demo image's /init reads the VM's name.</summary>
    public const string NamePath = "etc/orchestrator/name";

    /// <summary>
    /// Copies <paramref name="baseInitrd"/> to <paramref name="destination"/> and appends an uncompressed newc archive
    /// holding <see cref="NamePath"/>. The name travels inside the guest's files, never on a command line.
    /// </summary>
    public static void Write(string baseInitrd, string destination, string vmName)
    {
        using var output = new FileStream(destination, FileMode.CreateNew, FileAccess.Write, FileShare.None);
        using (var input = new FileStream(baseInitrd, FileMode.Open, FileAccess.Read, FileShare.Read))
        {
            input.CopyTo(output);
        }

        // The kernel only looks for a further archive at a 4-byte aligned offset, and skips zero bytes
        // between archives: without this padding it takes our cpio for garbage after a gzip'd archive.
        var padding = (int)((4 - (output.Length % 4)) % 4);
        output.Write(new byte[padding]);

        var cpio = new CpioNewcWriter(output);
        cpio.AddDirectory("etc");
        cpio.AddDirectory("etc/orchestrator");
        cpio.AddFile(NamePath, Encoding.UTF8.GetBytes(vmName + "\n"));
        cpio.Finish();
        output.Flush(flushToDisk: false);
    }
}
