namespace Orchestrator.Hypervisor;

/// <summary>Checks every driver makes before it starts a guest: the image's files are there and readable.</summary>
public static class GuestImageFiles
{
    /// <summary>The image's kernel, initrd and root disk paths that name no file, in that order.</summary>
    public static IReadOnlyList<string> Missing(GuestImage image) =>
        new[] { image.KernelPath, image.InitrdPath, image.RootDiskPath }.OfType<string>().Where(path => !File.Exists(path)).ToList();

    /// <summary>Throws <see cref="HypervisorException"/> naming the image and the file that can't be used.</summary>
    public static void CheckReadable(GuestImage image)
    {
        CheckReadable(image.KernelPath, $"kernel of image '{image.Name}'");
        CheckReadable(image.InitrdPath, $"initrd of image '{image.Name}'");
        if (image.RootDiskPath is { } rootDisk)
        {
            CheckReadable(rootDisk, $"root disk of image '{image.Name}'");
        }
    }

    private static void CheckReadable(string path, string what)
    {
        try
        {
            using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read);
            if (stream.Length == 0)
            {
                throw new HypervisorException($"the {what} ({path}) is empty");
            }
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or ArgumentException)
        {
            throw new HypervisorException($"the {what} ({path}) is not readable: {ex.Message}", ex);
        }
    }
}
